// `fastify-pool/metrics`: the pool's Prometheus metrics as a part of their
// own, built on the pool's public hooks (docs/metrics.md). `createPool({
// metrics })` registers them for you; `new PoolMetrics(settings).register(pool)`
// does the same on a pool you made. Also what a process layer needs beyond
// a pool's own: the sum over a cluster's workers.
export { PoolMetrics, DURATION_BUCKETS, metricsIssues, clusterMetrics, type MetricsSettings } from './observability/metrics.ts'
export { UNMATCHED_ROUTE } from './observability/recording.ts'
export type { MetricsOptions, TrafficFigures } from './config/types.ts'
