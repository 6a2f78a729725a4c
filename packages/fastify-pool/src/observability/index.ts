// `fastify-pool/metrics`: what a process layer needs of the metrics beyond
// a pool's own (fastify-pool-cli's primary: the sum over its workers).
export { clusterMetrics } from './metrics.ts'
