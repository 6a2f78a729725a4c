// The one source of truth for configuration: TypeBox schemas from which both
// the TypeScript types and the shipped JSON Schema (for pool.yaml) are made.
import { Type, type Static } from '@sinclair/typebox'
import { ControlObjectSchema, MetricsObjectSchema, PeriodicMonitorSchema } from './options.ts'
import { schemaIssues, UNKNOWN } from './schema-issues.ts'
import type { ValidationIssue } from '../base/errors.ts'

/**
 * Every default of a listener and of the pool, written once: each schema
 * below carries its value as `default:` (and says it in its description),
 * validateConfig() applies them (config.ts), and a test holds
 * docs/config.md's tables to them.
 */
export const BUILTIN_DEFAULTS = Object.freeze({
  // Off, as in Fastify and Node: a socket timer is refreshed on every read and
  // write (about 2.5 % of a small request's CPU), and the timeouts below bound
  // every way a client can hold a socket.
  connectionTimeout: 0,
  // Above the 60 s idle timeout of common load balancers, as Fastify does.
  keepAliveTimeout: 72_000,
  requestTimeout: 120_000,
  headersTimeout: 30_000,
  // nginx's send_timeout: a client that stops reading cannot hold a socket for minutes.
  sendTimeout: 60_000,
  // Long enough that a deploy or two in a row closes no WebSocket, short
  // enough that old generations do not pile up in memory (nginx keeps old
  // workers for as long as one connection stays, unless told otherwise).
  upgradeDrainTimeout: 300_000,
  // 1,000 goodbyes take a second, 100 take 100 ms.
  upgradeCloseWindow: 1000,
  bodyLimit: 1_048_576,
  stopTimeout: 10_000,
  shutdownDelay: 0,
  liveness: '/healthz',
  readiness: '/readyz',
  // A tenth of a second of queueing: a flooded listener takes 10 ms of loop
  // time per turn while other listeners are served, so their requests and
  // new connections (libuv accepts one per turn) wait a few turns; a
  // saturated listener whose turns stay under a quarter of it while no other
  // listener is served holds none (docs/overload.md).
  overloadTarget: 100,
  // Long enough that a client who gets 503 and sends again at once costs a
  // parse twice a second, short enough to be an answer rather than a timeout.
  overloadMaxWait: 500,
  retryAfter: 1
})

type Defaulted = { [K in keyof typeof BUILTIN_DEFAULTS]: typeof BUILTIN_DEFAULTS[K] extends number ? K : never }[keyof typeof BUILTIN_DEFAULTS]

/** An integer field with its built-in default, in the schema and in words. */
const withDefault = (key: Defaulted, minimum: number, description: string) =>
  Type.Integer({ minimum, default: BUILTIN_DEFAULTS[key], description: `${description} (default ${BUILTIN_DEFAULTS[key]})` })
const ms = (key: Defaulted, description: string) => withDefault(key, 0, `${description}, in milliseconds; 0 disables`)

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
  liveness: Type.Optional(Type.Union([Type.String({ pattern: '^/' }), Type.Literal(false)], { default: BUILTIN_DEFAULTS.liveness, description: `Path of the liveness route (default ${BUILTIN_DEFAULTS.liveness}), or false` })),
  readiness: Type.Optional(Type.Union([Type.String({ pattern: '^/' }), Type.Literal(false)], { default: BUILTIN_DEFAULTS.readiness, description: `Path of the readiness route (default ${BUILTIN_DEFAULTS.readiness}), or false` }))
}, { additionalProperties: false })

export const OverloadSchema = Type.Object({
  target: Type.Optional(withDefault('overloadTarget', 1, 'Queueing-delay target in milliseconds: the listener takes a tenth of it of event-loop time per turn (a quarter while no other listener is served), its requests beyond wait, and once they wait longer than it the newest are served first')),
  maxWait: Type.Optional(withDefault('overloadMaxWait', 1, 'Milliseconds a request may wait before it is answered 503 with Retry-After, without running its route')),
  retryAfter: Type.Optional(withDefault('retryAfter', 0, 'Seconds, the Retry-After of that 503')),
  exempt: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { description: 'Paths never held nor shed besides the health, control and metrics routes: /x exactly, /x/* everything under /x' }))
}, { additionalProperties: false })

const shared = {
  connectionTimeout: Type.Optional(ms('connectionTimeout', 'Socket inactivity timeout')),
  keepAliveTimeout: Type.Optional(ms('keepAliveTimeout', 'How long an idle keep-alive connection stays open')),
  requestTimeout: Type.Optional(ms('requestTimeout', 'Longest time to receive a whole request')),
  headersTimeout: Type.Optional(ms('headersTimeout', 'Longest time to receive the request headers')),
  sendTimeout: Type.Optional(ms('sendTimeout', 'How long a response may wait for a client that stopped reading before its connection is closed')),
  upgradeDrainTimeout: Type.Optional(withDefault('upgradeDrainTimeout', 0, 'After a restart or reload, how long the previous generation keeps its upgraded connections (WebSockets) before its preClose hooks close them, in milliseconds')),
  upgradeCloseWindow: Type.Optional(withDefault('upgradeCloseWindow', 0, 'Spread the goodbyes to upgraded connections over up to this many milliseconds, one per millisecond at most, so clients do not all reconnect at once; within a stop, a quarter of its deadline at most; 0: all at once')),
  bodyLimit: Type.Optional(withDefault('bodyLimit', 1, 'Largest request body accepted, in bytes')),
  logLevel: Type.Optional(LogLevelSchema),
  health: Type.Optional(Type.Union([HealthSchema, Type.Literal(false)], { description: 'Health routes, or false to serve none' })),
  overload: Type.Optional(Type.Union([OverloadSchema, Type.Literal(false)], { description: 'Load shedding (on by default), or false to serve every request whatever the load' }))
}

export const ListenerConfigSchema = Type.Object({
  name: Type.String({ minLength: 1, description: 'Unique name of the listener' }),
  listen: Type.Union([Type.String(), Type.Integer()], { description: 'host:port, :port, [ipv6]:port, unix:/path/to.sock, or a port number' }),
  expose: Type.Optional(Type.String({ description: 'Public URL; derived from listen and TLS when absent' })),
  handler: Type.Optional(Type.String({ minLength: 1, default: 'default', description: 'Handler key (default "default")' })),
  disabled: Type.Optional(Type.Boolean({ default: false, description: 'Keep the listener in the pool but never start it' })),
  optional: Type.Optional(Type.Boolean({ default: false, description: 'A failure to start this listener does not fail the pool start' })),
  tls: Type.Optional(Type.Union([TlsSchema, Type.Literal(false)], { description: 'TLS settings merged over defaults.tls, or false for plain HTTP' })),
  http2: Type.Optional(Type.Boolean({ default: false, description: 'Serve HTTP/2 (with HTTP/1.1 fallback when TLS is on)' })),
  stopOrder: Type.Optional(Type.Integer({ default: 0, description: 'pool.stop() drains listeners in groups by this number, lowest first (default 0): public listeners before the admin one' })),
  ...shared,
  fastify: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Other Fastify server options, passed through' }))
}, { additionalProperties: false })

export const PoolDefaultsSchema = Type.Object({
  tls: Type.Optional(TlsSchema),
  ...shared,
  stopTimeout: Type.Optional(withDefault('stopTimeout', 0, 'Drain deadline of stop() and restart(), in milliseconds')),
  shutdownDelay: Type.Optional(withDefault('shutdownDelay', 0, 'pool.stop(): milliseconds during which readiness answers 503 while requests are still served, before the drain; within stopTimeout'))
}, { additionalProperties: false, description: 'Settings every listener inherits and may override', expected: 'an object' })

// The file's metrics and control sections are the options' schemas without
// what only code can give (a registry, functions).
export const MetricsFileSchema = Type.Union([
  Type.Boolean(),
  Type.Omit(MetricsObjectSchema, ['registry', 'exposition'], { additionalProperties: false })
], { description: 'Prometheus metrics: true serves them on the listener named admin at /metrics' })

export const ControlFileSchema = Type.Omit(ControlObjectSchema, ['reload', 'upgrade', 'status', 'act'], {
  additionalProperties: false,
  description: 'The control API: GET /pool, POST /pool/restart|stop|start|reload; the fastify-pool ps, restart, stop and reload commands talk to it'
})

/** How many processes run the pool: the one rule for the file's `workers` and `start --workers`. */
const WORKERS_EXPECTED = 'a whole number of processes >= 1, or "auto" for one per core'
export const WorkersSchema = Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('auto')], {
  expected: WORKERS_EXPECTED,
  description: 'fastify-pool start: run the pool in this many processes (node:cluster) sharing the listening sockets; auto: one per core (default 1)'
})

/** Whether `value` is a `workers` value (WorkersSchema). */
export function isWorkers (value: unknown): value is number | 'auto' {
  return value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1)
}

/** What is wrong with a `workers` value, in the words of WorkersSchema; undefined when nothing. */
export function workersProblem (value: unknown, shown: string = JSON.stringify(value)): string | undefined {
  return isWorkers(value) ? undefined : `must be ${WORKERS_EXPECTED} (got ${shown})`
}

/** The file's monitor section: the library's option (options.ts) without what a file cannot hold (a function). */
export const MonitorFileSchema = Type.Union([
  Type.Boolean(),
  Type.Omit(PeriodicMonitorSchema, ['onChange'])
], { description: 'Periodic health checks of every listener (true for the defaults), started with the pool' })

/** The shape of a pool configuration file (pool.yaml / pool.json). */
export const PoolFileSchema = Type.Object({
  $schema: Type.Optional(Type.String({ expected: 'a string' })),
  defaults: Type.Optional(PoolDefaultsSchema),
  metrics: Type.Optional(MetricsFileSchema),
  control: Type.Optional(ControlFileSchema),
  monitor: Type.Optional(MonitorFileSchema),
  workers: Type.Optional(WorkersSchema),
  handlers: Type.Optional(Type.Record(Type.String(), Type.String({ minLength: 1, expected: 'a module path, relative to this file' }), { description: 'Handler key -> module path, relative to this file', expected: 'a map of handler keys to module paths' })),
  servers: Type.Array(ListenerConfigSchema, { description: 'The listeners', expected: 'a list of listeners' })
}, { additionalProperties: false, title: 'fastify-pool configuration' })

/**
 * The top level of a pool file against PoolFileSchema: unknown fields, each
 * section's type, the handler map's module paths. What a section holds is
 * left to its own check (validateConfig(), the metrics, control and monitor
 * checks), which words it in its own terms; a file adds only what is here.
 */
export function fileFieldIssues (doc: Record<string, unknown>): ValidationIssue[] {
  const issues: ValidationIssue[] = []
  schemaIssues(PoolFileSchema, doc, '', issues)
  const known = Object.keys(PoolFileSchema.properties)
  return issues.filter(i => !/[.[]/.test(i.path) || i.path.startsWith('handlers.')).map(i => {
    if (i.message.startsWith(UNKNOWN)) return { ...i, message: `is not a known field${i.message.slice(UNKNOWN.length)} (expected ${known.join(', ')})` }
    const expected = (PoolFileSchema.properties as Record<string, { expected?: string }>)[i.path]?.expected
    return i.message === 'is required' && expected !== undefined ? { ...i, message: `is required: ${expected}` } : i
  })
}

export type TlsFileConfig = Static<typeof TlsSchema>
export type HealthConfig = Static<typeof HealthSchema>
export type LogLevel = Static<typeof LogLevelSchema>
export type PoolFileConfig = Static<typeof PoolFileSchema>
