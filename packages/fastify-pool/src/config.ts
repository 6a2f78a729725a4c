// `fastify-pool/config`: what a tool that reads pool files needs beyond
// createPool() (fastify-pool-cli, an editor's schema, a linter): the schemas
// of a pool file, its top-level check, the workers setting, and what the
// library reads of a TLS certificate and offers by default.
export { isWorkers, workersProblem, fileFieldIssues, PoolFileSchema, ListenerConfigSchema, PoolDefaultsSchema, TlsSchema, HealthSchema, type PoolFileConfig, type HealthConfig, type LogLevel } from './config/schema.ts'
export { certificateInfo, EXPIRY_WARNING_DAYS, DEFAULT_CIPHERS, DEFAULT_ECDH_CURVE, type CertificateInfo, type TlsConfig } from './config/tls.ts'
