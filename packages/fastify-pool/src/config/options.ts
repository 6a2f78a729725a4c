// The options of the library's functions, as TypeBox schemas with their
// defaults: createPool(), the plugin, the monitor, the status route and
// reload(). Each is checked by the same code as the pool file (schema-issues.ts),
// so every option problem is an issue at its path in one FST_POOL_VALIDATE.
// The documented TypeScript types stay in the modules that use them; these
// schemas say what is accepted and what is assumed when a field is left out.
import { Type, type TObject, type TProperties, type TSchema } from '@sinclair/typebox'
import { FST_POOL_INVALID_ARGUMENT, validationError, type ValidationIssue } from '../base/errors.ts'
import { schemaIssues, UNKNOWN } from './schema-issues.ts'

// `expected` is our own keyword: schema-issues.ts words an issue with it.
const positiveMs = (fallback?: number) => Type.Integer({ minimum: 1, expected: 'a positive integer number of milliseconds', ...(fallback === undefined ? {} : { default: fallback }) })
const count = (fallback: number) => Type.Integer({ minimum: 1, expected: 'an integer >= 1', default: fallback })
const msOrZero = (fallback: number) => Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0', default: fallback })
const flag = () => Type.Boolean({ expected: 'a boolean' })
const fn = (what: string) => Type.Function([], Type.Unknown(), { expected: what })

/** `what` with its default, in the schema and in words (the pool file's JSON Schema shows the description). */
const described = (description: string, fallback: number): { description: string, default: number } => ({ description: `${description} (default ${fallback})`, default: fallback })

/** Health-driven restart: the one schema, for the option and the pool file alike; its defaults are AUTO_RESTART_DEFAULTS. */
export const AutoRestartSchema = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 1, expected: 'an integer >= 1', ...described('Failed checks in a row that restart the listener', 3) })),
  backoff: Type.Optional(Type.Object({
    min: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0', ...described('First wait between attempts, doubled at each, in milliseconds', 1000) })),
    max: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0', ...described('Longest wait between attempts, in milliseconds', 60_000) }))
  }, { additionalProperties: false })),
  max: Type.Optional(Type.Integer({ minimum: 1, expected: 'an integer >= 1', ...described('Attempts within the window before giving up', 5) })),
  window: Type.Optional(Type.Integer({ minimum: 1, expected: 'a positive integer number of milliseconds', ...described('Milliseconds over which attempts are counted', 600_000) }))
}, { additionalProperties: false })

/** Options of the periodic monitor (pool.startMonitor(), the plugin's `monitor`, the file's `monitor`). */
export const PeriodicMonitorSchema = Type.Object({
  interval: Type.Optional(Type.Integer({ ...positiveMs(), ...described('Milliseconds between two rounds of checks', 5000) })),
  timeout: Type.Optional(Type.Integer({ ...positiveMs(), ...described('Milliseconds a check may take', 2000) })),
  rise: Type.Optional(Type.Integer({ ...count(2), ...described('Passed checks in a row that make a listener ok', 2) })),
  fall: Type.Optional(Type.Integer({ ...count(3), ...described('Failed checks in a row that make a listener ko', 3) })),
  history: Type.Optional(Type.Integer({ ...count(10), ...described('Checks kept per listener', 10) })),
  onChange: Type.Optional(fn('a function (report, previous) => void')),
  autoRestart: Type.Optional(Type.Union([Type.Boolean(), AutoRestartSchema], { expected: 'true, or { after, backoff: { min, max }, max, window }', description: 'Restart a listener whose checks keep failing' }))
}, { additionalProperties: false })

/** Options of one pool.monitor() call. */
export const MonitorCallSchema = Type.Object({
  fresh: Type.Optional(flag()),
  timeout: Type.Optional(positiveMs()),
  strict: Type.Optional(flag())
}, { additionalProperties: false })

export const VersionSchema = Type.Record(Type.String(), Type.Unknown(), { expected: 'an object such as { name, release, build }' })
/** monitor()'s first argument, at the path `version`. */
export const VersionArgumentSchema = Type.Object({ version: Type.Optional(VersionSchema) })

/** The `metrics` option: true for the defaults, or where to serve the exposition. */
export const MetricsObjectSchema = Type.Object({
  listener: Type.Optional(Type.String({ minLength: 1, default: 'admin', description: 'The listener that serves the metrics' })),
  path: Type.Optional(Type.String({ pattern: '^/', expected: 'a path starting with "/"', default: '/metrics', description: 'Path of the exposition' })),
  registry: Type.Optional(Type.Object({}, { expected: 'a prom-client Registry' })),
  defaultMetrics: Type.Optional(Type.Boolean({ expected: 'a boolean', default: true, description: 'Include the process metrics of prom-client' })),
  exposition: Type.Optional(fn('a function () => Promise<string> that gives the text to serve'))
}, { additionalProperties: false })
export const MetricsOptionSchema = Type.Union([Type.Boolean(), MetricsObjectSchema], { expected: 'true, or { listener, path, registry, defaultMetrics }' })

/** The `control` option: where the control API is served, and its token. */
export const ControlObjectSchema = Type.Object({
  listener: Type.Optional(Type.String({ minLength: 1, default: 'admin', description: 'The listener that serves the control API' })),
  token: Type.Optional(Type.String({ minLength: 16, writeOnly: true, expected: 'a secret of at least 16 characters', description: 'Bearer token, 16 characters at least; required unless the listener is on loopback or a unix socket. In a pool file read it from the environment, never write it there' })),
  path: Type.Optional(Type.String({ pattern: '^/', expected: 'a path starting with "/"', default: '/pool', description: 'Where the routes are' })),
  reload: Type.Optional(fn('a function () => Promise that reloads the pool')),
  upgrade: Type.Optional(fn('a function ({ timeout, node }) => Promise that replaces the process')),
  status: Type.Optional(fn('a function () => Promise<object> whose fields GET /pool adds')),
  act: Type.Optional(fn('a function (action, query) => Promise<{ statusCode, body }> that acts in every process'))
}, { additionalProperties: false })

export const ControlArgumentSchema = Type.Object({ control: Type.Optional(ControlObjectSchema) })

/**
 * createPool()'s own fields. servers, defaults and handlers are checked in
 * depth by config.ts and handlers.ts, which know the pool file's rules.
 */
export const PoolOptionsSchema = Type.Object({
  servers: Type.Optional(Type.Unknown()),
  defaults: Type.Optional(Type.Unknown()),
  handlers: Type.Optional(Type.Unknown()),
  factory: Type.Optional(fn('a function (config, options) => FastifyInstance')),
  logger: Type.Optional(Type.Union([Type.Boolean(), Type.Object({})], { expected: 'a boolean, pino options or a pino logger' })),
  baseDir: Type.Optional(Type.String({ expected: 'a folder path' })),
  metrics: Type.Optional(MetricsOptionSchema),
  control: Type.Optional(ControlObjectSchema),
  // An object whose methods may be its class's: checked by socketSourceIssues() (resolve.ts).
  sockets: Type.Optional(Type.Unknown()),
  // Checked by hooksIssues() (hooks.ts).
  hooks: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

/**
 * The plugin's options: the pool's (named here, checked once, by
 * createPool()), its own, and Fastify's register() options it receives with them.
 */
export const PluginOptionsSchema = Type.Object({
  ...Object.fromEntries(Object.keys(PoolOptionsSchema.properties).map(key => [key, Type.Optional(Type.Unknown())])),
  drainDelay: Type.Optional(msOrZero(0)),
  monitor: Type.Optional(Type.Union([Type.Boolean(), PeriodicMonitorSchema], { expected: 'a boolean or periodic monitor options' })),
  prefix: Type.Optional(Type.Unknown()),
  logLevel: Type.Optional(Type.Unknown()),
  logSerializers: Type.Optional(Type.Unknown())
}, { additionalProperties: false })

/** The status route's options (the pool itself is checked by its brand). */
export const StatusRouteSchema = Type.Object({
  pool: Type.Optional(Type.Unknown()),
  path: Type.Optional(Type.String({ pattern: '^/', expected: 'a path starting with "/"', default: '/pool' })),
  version: Type.Optional(VersionSchema),
  fresh: Type.Optional(flag()),
  timeout: Type.Optional(positiveMs()),
  strict: Type.Optional(Type.Boolean({ expected: 'a boolean', default: false }))
}, { additionalProperties: false })

/** reload()'s fields besides the configuration itself. */
export const ReloadOptionsSchema = Type.Object({
  servers: Type.Optional(Type.Unknown()),
  defaults: Type.Optional(Type.Unknown()),
  handlers: Type.Optional(Type.Unknown()),
  baseDir: Type.Optional(Type.String({ expected: 'a folder path' })),
  timeout: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0' }))
}, { additionalProperties: false })

/** The options of stop() and restart(), of a listener and of a pool. */
export const StopOptionsSchema = Type.Object({
  timeout: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0' })),
  delay: Type.Optional(Type.Integer({ minimum: 0, expected: 'an integer number of milliseconds >= 0' })),
  handOff: Type.Optional(flag())
}, { additionalProperties: false })

const CanarySchema = Type.Object({
  share: Type.Optional(Type.Number({ minimum: 1, maximum: 99, expected: 'a percentage from 1 to 99' })),
  steps: Type.Optional(Type.Array(Type.Number({ minimum: 1, maximum: 99 }), { expected: 'an array of percentages from 1 to 99' })),
  window: Type.Optional(Type.Integer({ minimum: 100, expected: 'an integer number of milliseconds >= 100' })),
  minRequests: Type.Optional(Type.Integer({ minimum: 1, expected: 'an integer >= 1' })),
  maxErrorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1, expected: 'a share from 0 to 1' })),
  maxLatencyRatio: Type.Optional(Type.Number({ minimum: 1, expected: 'a number >= 1' })),
  latencyFloor: Type.Optional(Type.Number({ minimum: 0, expected: 'milliseconds >= 0' })),
  sticky: Type.Optional(Type.Union([
    Type.Object({ header: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    Type.Object({ cookie: Type.String({ minLength: 1 }) }, { additionalProperties: false })
  ], { expected: '{ header: NAME } or { cookie: NAME }' })),
  whenIdle: Type.Optional(Type.Union([Type.Literal('promote'), Type.Literal('abort')], { expected: '"promote" or "abort"' }))
}, { additionalProperties: false })

export const RestartOptionsSchema = Type.Object({
  ...StopOptionsSchema.properties,
  canary: Type.Optional(Type.Union([Type.Literal(true), Type.Number({ minimum: 1, maximum: 99 }), CanarySchema], { expected: 'a percentage from 1 to 99, true, or canary options' }))
}, { additionalProperties: false })

/** FST_POOL_VALIDATE when `options` are not restart() options (undefined is). */
export function restartOptionsError (options: unknown, at: string): Error | undefined {
  if (options === undefined) return undefined
  const issues = optionIssues(RestartOptionsSchema, options, at)
  return issues.length === 0 ? undefined : validationError(issues)
}

/** FST_POOL_VALIDATE when `options` are not stop()/restart() options (undefined is). */
export function stopOptionsError (options: unknown, at: string): Error | undefined {
  if (options === undefined) return undefined
  const issues = optionIssues(StopOptionsSchema, options, at)
  return issues.length === 0 ? undefined : validationError(issues)
}

/** FST_POOL_INVALID_ARGUMENT when `request` is neither a URL path nor light-my-request options. */
export function injectRequestError (request: unknown): Error | undefined {
  if (typeof request === 'string' && request !== '') return unparsable(request)
  if (typeof request === 'object' && request !== null && !Array.isArray(request) && ('url' in request || 'path' in request)) {
    const url: unknown = 'url' in request ? request.url : request.path
    return typeof url === 'string' ? unparsable(url) : undefined
  }
  return new FST_POOL_INVALID_ARGUMENT(`inject() takes a URL path such as "/healthz" or light-my-request options such as { method: 'GET', url: '/' }, got ${request === '' ? 'an empty string' : request === null ? 'null' : Array.isArray(request) ? 'an array' : typeof request === 'object' ? 'an object without url' : typeof request}`)
}

/** A URL light-my-request cannot parse (it reads it against http://localhost, as a path when it starts with //), as a coded error. */
function unparsable (url: string): Error | undefined {
  const base = 'http://localhost'
  if (URL.canParse(url.startsWith('//') ? base + url : url, base)) return undefined
  return new FST_POOL_INVALID_ARGUMENT(`inject() takes a URL path such as "/healthz": ${JSON.stringify(url.length > 40 ? `${url.slice(0, 40)}…` : url)} is not one`)
}

/**
 * Issues of `value` against an options schema, paths prefixed with `at`. An
 * unknown option's issue lists the known ones, since these are typed by hand.
 */
export function optionIssues (schema: TObject, value: unknown, at: string): ValidationIssue[] {
  if (value === undefined) return []
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [{ path: at === '' ? 'options' : at, message: `must be an object (got ${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value})` }]
  }
  const issues: ValidationIssue[] = []
  schemaIssues(schema, value, at, issues)
  return issues.map(i => {
    if (!i.message.startsWith(UNKNOWN)) return i
    const parent = objectAt(schema, i.path.slice(at === '' ? 0 : at.length + 1).split('.').slice(0, -1))
    return parent === undefined ? i : { ...i, message: `${i.message} (known: ${Object.keys(parent.properties).filter(k => !REGISTER_OPTIONS.has(k)).join(', ')})` }
  })
}

/** The object schema at a path of property names (through unions, their object member). */
function objectAt (schema: TSchema, path: string[]): TObject | undefined {
  let here: TSchema | undefined = schema
  for (const key of path) {
    here = asObject(here)?.properties[key]
  }
  return asObject(here)
}

function asObject (schema: TSchema | undefined): TObject | undefined {
  if (schema === undefined) return undefined
  if (schema.type === 'object' && schema.properties !== undefined) return schema as TObject
  return Array.isArray(schema.anyOf) ? (schema.anyOf as TSchema[]).map(asObject).find(s => s !== undefined) : undefined
}

// Fastify's own register() options are accepted by the plugin but not named to users.
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

/** The defaults a schema declares, as one frozen object. */
export function defaultsOf<T extends TProperties> (schema: TObject<T>): Readonly<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const [key, property] of Object.entries(schema.properties) as Array<[string, TSchema]>) {
    if (property.default !== undefined) out[key] = property.default
  }
  return Object.freeze(out)
}

/**
 * `value` with the schema's top-level defaults filled in where it leaves a
 * field out (or gives undefined); `value` is not changed. Shallow on purpose:
 * options carry loggers and plugins, which must be passed on, never cloned.
 */
export function withDefaults<V extends object> (schema: TObject, value: V | undefined): V {
  const out: Record<string, unknown> = { ...value }
  for (const [key, fallback] of Object.entries(defaultsOf(schema))) out[key] ??= fallback
  return out as V
}

/** The option names of createPool(): the plugin hands exactly these to it. */
export const POOL_OPTION_NAMES: readonly string[] = Object.freeze(Object.keys(PoolOptionsSchema.properties))
