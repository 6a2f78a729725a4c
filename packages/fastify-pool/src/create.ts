// createPool(): check every option at once (FST_POOL_VALIDATE, nothing
// built), then make the listeners, the logger, the metrics and the control
// API, and the pool that holds them.
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { collectConfig, BUILTIN_DEFAULTS } from './config/config.ts'
import { Owner } from './base/brand.ts'
import { controlSettings, PoolControl } from './control/control.ts'
import { FST_POOL_INVALID_ARGUMENT, validationError, type ValidationIssue } from './base/errors.ts'
import { checkHandlers } from './config/handlers.ts'
import { passedSocketProblem } from './listener/inherited.ts'
import { Listener, type ListenerContext } from './listener/listener.ts'
import { metricsSettings, PoolMetrics } from './observability/metrics.ts'
import { optionIssues, PoolOptionsSchema } from './config/options.ts'
import { Pool } from './pool.ts'
import { REDACT } from './base/redact.ts'
import type { NormalizedConfig, PoolOptions } from './config/types.ts'

/** A listener on `systemd:NAME` or `fd:N` whose socket this process was not given. */
function passedSocketIssues (servers: readonly unknown[], configs: readonly NormalizedConfig[]): ValidationIssue[] {
  return configs.flatMap((c) => {
    const problem = passedSocketProblem(c.address)
    if (problem === undefined) return []
    const index = servers.findIndex(s => (s as { name?: unknown } | null)?.name === c.name)
    return [{ path: `servers[${index}].listen`, message: problem }]
  })
}

function makeLogger (logger: PoolOptions['logger'], level: string | undefined): FastifyBaseLogger | undefined {
  if (logger === undefined || logger === false) return undefined
  if (logger === true) return pino({ level: level ?? 'info', redact: { ...REDACT, paths: [...REDACT.paths] } })
  if (typeof (logger as FastifyBaseLogger).child === 'function') return logger as FastifyBaseLogger
  return pino({ ...(level === undefined ? {} : { level }), redact: { ...REDACT, paths: [...REDACT.paths] }, ...(logger as object) })
}

/** Build a pool from listener configs. Throws FST_POOL_VALIDATE listing every problem; builds nothing then. */
export function createPool (options: PoolOptions = {}): Pool {
  if (typeof options !== 'object' || options === null) throw new FST_POOL_INVALID_ARGUMENT(`createPool() takes an options object, got ${typeof options}`)
  const issues = [...optionIssues(PoolOptionsSchema, options, ''), ...checkHandlers(options.handlers)]
  const logger = options.logger
  const configs = collectConfig({ servers: options.servers, defaults: options.defaults, handlers: options.handlers, baseDir: options.baseDir }, issues)
  const names = (Array.isArray(options.servers) ? options.servers as unknown[] : []).map(s => (s as { name?: unknown } | null)?.name).filter((n): n is string => typeof n === 'string')
  const metricsOption = issues.some(i => i.path.startsWith('metrics')) ? undefined : metricsSettings(options.metrics, names, issues)
  const controlOption = issues.some(i => i.path.startsWith('control') || i.path.startsWith('servers')) ? undefined : controlSettings(options.control, configs, issues)
  if (issues.length === 0) issues.push(...passedSocketIssues(options.servers ?? [], configs))
  if (issues.length > 0) throw validationError(issues)
  const defaults = options.defaults ?? {}
  const metrics = metricsOption === undefined ? undefined : new PoolMetrics(metricsOption)
  const ctx: ListenerContext = {
    handlers: options.handlers,
    factory: options.factory,
    logger: makeLogger(logger, defaults.logLevel),
    stopTimeout: defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout,
    metrics,
    control: controlOption === undefined ? undefined : new PoolControl(controlOption),
    owner: new Owner()
  }
  return new Pool({ ctx, defaults, baseDir: options.baseDir, metrics }, configs.map(c => new Listener(c, ctx)))
}
