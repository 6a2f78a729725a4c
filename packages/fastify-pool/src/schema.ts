// The one source of truth for configuration: TypeBox schemas from which both
// the TypeScript types and the shipped JSON Schema (for pool.yaml) are made.
import { Type, type Static } from '@sinclair/typebox'

const ms = (description: string) => Type.Integer({ minimum: 0, description: `${description} (milliseconds; 0 disables)` })

export const LogLevelSchema = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)),
  { description: 'pino log level' })

export const TlsSchema = Type.Object({
  cert: Type.Optional(Type.String({ description: 'Certificate chain: PEM text or a path to a PEM file' })),
  key: Type.Optional(Type.String({ description: 'Private key: PEM text or a path to a PEM file' })),
  ca: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Trusted CA certificates (PEM text or paths), for client certificates' })),
  passphrase: Type.Optional(Type.String({ description: 'Passphrase of an encrypted private key' })),
  minVersion: Type.Optional(Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { description: 'Lowest TLS version accepted (default TLSv1.2)' })),
  requestCert: Type.Optional(Type.Boolean({ description: 'Ask clients for a certificate (mutual TLS)' })),
  rejectUnauthorized: Type.Optional(Type.Boolean({ description: 'With requestCert: refuse clients whose certificate is not signed by ca (default true)' })),
  ciphers: Type.Optional(Type.String({ minLength: 1, description: 'OpenSSL cipher list (TLS 1.3 suites start with TLS_); default: ECDHE key exchange with AEAD ciphers only, as in Mozilla\'s intermediate profile' })),
  ecdhCurve: Type.Optional(Type.String({ minLength: 1, description: 'Key-exchange groups, colon-separated (default X25519:prime256v1:secp384r1)' }))
}, { additionalProperties: false, description: 'TLS settings; a listener with TLS serves HTTPS' })

export const HealthSchema = Type.Object({
  liveness: Type.Optional(Type.Union([Type.String({ pattern: '^/' }), Type.Literal(false)], { description: 'Path of the liveness route (default /healthz), or false' })),
  readiness: Type.Optional(Type.Union([Type.String({ pattern: '^/' }), Type.Literal(false)], { description: 'Path of the readiness route (default /readyz), or false' }))
}, { additionalProperties: false })

const shared = {
  connectionTimeout: Type.Optional(ms('Socket inactivity timeout')),
  keepAliveTimeout: Type.Optional(ms('How long an idle keep-alive connection stays open')),
  requestTimeout: Type.Optional(ms('Longest time to receive a whole request')),
  headersTimeout: Type.Optional(ms('Longest time to receive the request headers')),
  sendTimeout: Type.Optional(ms('How long a response may wait for a client that stopped reading before its connection is closed (default 60000)')),
  upgradeDrainTimeout: Type.Optional(Type.Integer({ minimum: 0, description: 'After a restart or reload, how long the previous generation keeps its upgraded connections (WebSockets) before its preClose hooks close them, in milliseconds (default 300000)' })),
  upgradeCloseWindow: Type.Optional(Type.Integer({ minimum: 0, description: 'Spread the goodbyes to upgraded connections over up to this many milliseconds, one per millisecond at most, so clients do not all reconnect at once; within a stop, a quarter of its deadline at most (default 1000; 0: all at once)' })),
  bodyLimit: Type.Optional(Type.Integer({ minimum: 1, description: 'Largest request body accepted, in bytes' })),
  logLevel: Type.Optional(LogLevelSchema),
  health: Type.Optional(Type.Union([HealthSchema, Type.Literal(false)], { description: 'Health routes, or false to serve none' }))
}

export const ListenerConfigSchema = Type.Object({
  name: Type.String({ minLength: 1, description: 'Unique name of the listener' }),
  listen: Type.Union([Type.String(), Type.Integer()], { description: 'host:port, :port, [ipv6]:port, unix:/path/to.sock, or a port number' }),
  expose: Type.Optional(Type.String({ description: 'Public URL; derived from listen and TLS when absent' })),
  handler: Type.Optional(Type.String({ minLength: 1, description: 'Handler key (default "default")' })),
  disabled: Type.Optional(Type.Boolean({ description: 'Keep the listener in the pool but never start it' })),
  optional: Type.Optional(Type.Boolean({ description: 'A failure to start this listener does not fail the pool start' })),
  tls: Type.Optional(Type.Union([TlsSchema, Type.Literal(false)], { description: 'TLS settings merged over defaults.tls, or false for plain HTTP' })),
  http2: Type.Optional(Type.Boolean({ description: 'Serve HTTP/2 (with HTTP/1.1 fallback when TLS is on)' })),
  stopOrder: Type.Optional(Type.Integer({ description: 'pool.stop() drains listeners in groups by this number, lowest first (default 0): public listeners before the admin one' })),
  ...shared,
  fastify: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Other Fastify server options, passed through' }))
}, { additionalProperties: false })

export const PoolDefaultsSchema = Type.Object({
  tls: Type.Optional(TlsSchema),
  ...shared,
  stopTimeout: Type.Optional(Type.Integer({ minimum: 0, description: 'Drain deadline of stop() and restart(), in milliseconds (default 10000)' })),
  shutdownDelay: Type.Optional(Type.Integer({ minimum: 0, description: 'pool.stop(): milliseconds during which readiness answers 503 while requests are still served, before the drain; within stopTimeout (default 0)' }))
}, { additionalProperties: false, description: 'Settings every listener inherits and may override' })

export const MetricsFileSchema = Type.Union([
  Type.Boolean(),
  Type.Object({
    listener: Type.Optional(Type.String({ minLength: 1, description: 'The listener that serves the metrics (default admin)' })),
    path: Type.Optional(Type.String({ pattern: '^/', description: 'Path of the exposition (default /metrics)' })),
    defaultMetrics: Type.Optional(Type.Boolean({ description: 'Include the process metrics of prom-client (default true)' }))
  }, { additionalProperties: false })
], { description: 'Prometheus metrics: true serves them on the listener named admin at /metrics' })

export const ControlFileSchema = Type.Object({
  listener: Type.Optional(Type.String({ minLength: 1, description: 'The listener that serves the control API (default admin)' })),
  token: Type.Optional(Type.String({ minLength: 16, writeOnly: true, description: 'Bearer token, 16 characters at least; required unless the listener is on loopback or a unix socket. Read it from the environment, never write it in the file' })),
  path: Type.Optional(Type.String({ pattern: '^/', description: 'Where the routes are (default /pool)' }))
}, { additionalProperties: false, description: 'The control API: GET /pool, POST /pool/restart|stop|start|reload; the fastify-pool ps, restart, stop and reload commands talk to it' })

const positive = (description: string) => Type.Optional(Type.Integer({ minimum: 1, description }))
export const MonitorFileSchema = Type.Union([
  Type.Boolean(),
  Type.Object({
    interval: positive('Milliseconds between two rounds of checks (default 5000)'),
    timeout: positive('Milliseconds a check may take (default 2000)'),
    rise: positive('Passed checks in a row that make a listener ok (default 2)'),
    fall: positive('Failed checks in a row that make a listener ko (default 3)'),
    history: positive('Checks kept per listener (default 10)'),
    autoRestart: Type.Optional(Type.Union([Type.Boolean(), Type.Object({
      after: positive('Failed checks in a row that restart the listener (default 3)'),
      backoff: Type.Optional(Type.Object({
        min: Type.Optional(Type.Integer({ minimum: 0, description: 'First wait between attempts, doubled at each (default 1000 ms)' })),
        max: Type.Optional(Type.Integer({ minimum: 0, description: 'Longest wait between attempts (default 60000 ms)' }))
      }, { additionalProperties: false })),
      max: positive('Attempts within the window before giving up (default 5)'),
      window: positive('Milliseconds over which attempts are counted (default 600000)')
    }, { additionalProperties: false })], { description: 'Restart a listener whose checks keep failing' }))
  }, { additionalProperties: false })
], { description: 'Periodic health checks of every listener (true for the defaults), started with the pool' })

/** The shape of a pool configuration file (pool.yaml / pool.json). */
export const PoolFileSchema = Type.Object({
  $schema: Type.Optional(Type.String()),
  defaults: Type.Optional(PoolDefaultsSchema),
  metrics: Type.Optional(MetricsFileSchema),
  control: Type.Optional(ControlFileSchema),
  monitor: Type.Optional(MonitorFileSchema),
  workers: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('auto')], { description: 'fastify-pool start: run the pool in this many processes (node:cluster) sharing the listening sockets; auto: one per core (default 1)' })),
  handlers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Handler key -> module path, relative to this file' })),
  servers: Type.Array(ListenerConfigSchema, { description: 'The listeners' })
}, { additionalProperties: false, title: 'fastify-pool configuration' })

export type TlsFileConfig = Static<typeof TlsSchema>
export type HealthConfig = Static<typeof HealthSchema>
export type LogLevel = Static<typeof LogLevelSchema>
export type PoolFileConfig = Static<typeof PoolFileSchema>
