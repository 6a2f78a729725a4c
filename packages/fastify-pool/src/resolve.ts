// resolvePoolOptions(): every option of createPool() checked at once
// (FST_POOL_VALIDATE naming each problem, nothing built), the listeners
// resolved (validateConfig()), the metrics and control settings defaulted and
// checked against them. The result is frozen and marked: createPool() takes it
// as it is, checking nothing again. The command resolves a file's options
// once, with what it plugs in (its logger, its hooks) already in them.
import { collectConfig } from './config/config.ts'
import { controlSettings, type ControlSettings } from './control/control.ts'
import { FST_POOL_INVALID_ARGUMENT, quote, validationError, type ValidationIssue } from './base/errors.ts'
import { checkHandlers } from './config/handlers.ts'
import { metricsSettings, type MetricsSettings } from './observability/metrics.ts'
import { optionIssues, PoolOptionsSchema } from './config/options.ts'
import { hooksIssues } from './listener/hooks.ts'
import type { Factory, Handlers, HooksOption, NormalizedConfig, PoolDefaults, PoolOptions as BasePoolOptions, SocketSource } from './config/types.ts'
import type { Listener } from './listener/listener.ts'
import type { Pool } from './pool.ts'

/** The options of createPool() (config/types.ts), with the hooks typed by the pool's own classes. */
export interface PoolOptions extends Omit<BasePoolOptions, 'hooks'> {
  /** Lifecycle hooks, by name (one function or an array): see `pool.addHook()` and docs/hooks.md. */
  hooks?: HooksOption<Listener, Pool>
}

/** What resolvePoolOptions() returns: createPool() builds from it without checking anything again. */
export interface ResolvedPoolOptions {
  readonly servers: readonly NormalizedConfig[]
  readonly defaults: PoolDefaults
  readonly handlers: Handlers | undefined
  readonly factory: Factory | undefined
  readonly logger: PoolOptions['logger']
  readonly baseDir: string | undefined
  /** With their defaults; undefined when off. */
  readonly metrics: Readonly<MetricsSettings> | undefined
  readonly control: Readonly<ControlSettings> | undefined
  readonly sockets: SocketSource | undefined
  readonly hooks: HooksOption<Listener, Pool> | undefined
}

// The mark of a result of this copy of the package (non-enumerable: a spread
// of it is plain options again, and is resolved again).
const kResolved = Symbol('fastify-pool.resolvedOptions')

export function isResolvedOptions (value: unknown): value is ResolvedPoolOptions {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, kResolved)
}

/** The `sockets` option: an object (a class's instance too) with take() and, optionally, problem(). */
function socketSourceIssues (sockets: unknown): ValidationIssue[] {
  if (sockets === undefined) return []
  const source = sockets as Partial<Record<'take' | 'problem', unknown>> | null
  const shaped = typeof source === 'object' && source !== null && typeof source.take === 'function' && (source.problem === undefined || typeof source.problem === 'function')
  return shaped ? [] : [{ path: 'sockets', message: `must be a socket source: an object with take(address, bind) and, optionally, problem(address, bind) (got ${quote(sockets)})` }]
}

/** Check and default every option of createPool(); throws FST_POOL_VALIDATE listing every problem. */
export function resolvePoolOptions (options: PoolOptions | ResolvedPoolOptions = {}): ResolvedPoolOptions {
  if (isResolvedOptions(options)) return options
  if (typeof options !== 'object' || options === null) throw new FST_POOL_INVALID_ARGUMENT(`createPool() takes an options object, got ${typeof options}`)
  const issues = [...optionIssues(PoolOptionsSchema, options, ''), ...checkHandlers(options.handlers), ...socketSourceIssues(options.sockets), ...hooksIssues(options.hooks)]
  const servers = collectConfig({ servers: options.servers, defaults: options.defaults, handlers: options.handlers, baseDir: options.baseDir }, issues)
  const names = (Array.isArray(options.servers) ? options.servers as unknown[] : []).map(s => (s as { name?: unknown } | null)?.name).filter((n): n is string => typeof n === 'string')
  const metrics = issues.some(i => i.path.startsWith('metrics')) ? undefined : metricsSettings(options.metrics, names, issues)
  const control = issues.some(i => i.path.startsWith('control') || i.path.startsWith('servers')) ? undefined : controlSettings(options.control, servers, issues)
  if (issues.length > 0) throw validationError(issues)
  const resolved: ResolvedPoolOptions = {
    servers: Object.freeze(servers),
    defaults: options.defaults ?? {},
    handlers: options.handlers,
    factory: options.factory,
    logger: options.logger,
    baseDir: options.baseDir,
    metrics: metrics === undefined ? undefined : Object.freeze(metrics),
    control: control === undefined ? undefined : Object.freeze(control),
    sockets: options.sockets,
    hooks: options.hooks
  }
  return Object.freeze(Object.defineProperty(resolved, kResolved, { value: true }))
}
