// createPool(): every option resolved at once (resolve.ts: FST_POOL_VALIDATE,
// nothing built), then the listeners, the logger, the metrics and the control
// API made, and the pool that holds them.
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { BUILTIN_DEFAULTS } from './config/config.ts'
import { Owner } from './base/brand.ts'
import { validationError, type ValidationIssue } from './base/errors.ts'
import { SocketSeam } from './listener/sockets.ts'
import { PoolControl } from './control/control.ts'
import { Listener, type ListenerContext } from './listener/listener.ts'
import { PoolMetrics } from './observability/metrics.ts'
import { Pool } from './pool.ts'
import { Hooks } from './listener/hooks.ts'
import { REDACT } from './base/redact.ts'
import type { NormalizedConfig } from './config/types.ts'
import { resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './resolve.ts'

/**
 * A listener on `systemd:NAME` or `fd:N` whose socket this process was not
 * given. Not part of resolving: it is about this process, not the options
 * (`fastify-pool validate` checks a systemd pool file anywhere).
 */
function passedSocketIssues (configs: readonly NormalizedConfig[], sockets: SocketSeam): ValidationIssue[] {
  return configs.flatMap((c, index) => {
    const problem = sockets.problem(c.address)
    return problem === undefined ? [] : [{ path: `servers[${index}].listen`, message: problem }]
  })
}

function makeLogger (logger: PoolOptions['logger'], level: string | undefined): FastifyBaseLogger | undefined {
  if (logger === undefined || logger === false) return undefined
  if (logger === true) return pino({ level: level ?? 'info', redact: { ...REDACT, paths: [...REDACT.paths] } })
  if (typeof (logger as FastifyBaseLogger).child === 'function') return logger as FastifyBaseLogger
  return pino({ ...(level === undefined ? {} : { level }), redact: { ...REDACT, paths: [...REDACT.paths] }, ...(logger as object) })
}

/**
 * Build a pool from listener configs, or from what resolvePoolOptions()
 * returned (then nothing is checked again). Throws FST_POOL_VALIDATE listing
 * every problem; builds nothing then.
 */
export function createPool (options: PoolOptions | ResolvedPoolOptions = {}): Pool {
  const resolved = resolvePoolOptions(options)
  const sockets = new SocketSeam(resolved.sockets)
  const missing = passedSocketIssues(resolved.servers, sockets)
  if (missing.length > 0) throw validationError(missing)
  const defaults = resolved.defaults
  const metrics = resolved.metrics === undefined ? undefined : new PoolMetrics(resolved.metrics)
  const control = resolved.control === undefined ? undefined : new PoolControl(resolved.control)
  const ctx: ListenerContext = {
    handlers: resolved.handlers,
    factory: resolved.factory,
    logger: makeLogger(resolved.logger, defaults.logLevel),
    stopTimeout: defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout,
    hooks: new Hooks(),
    owner: new Owner(),
    sockets
  }
  const pool = new Pool({ ctx, defaults, baseDir: resolved.baseDir, metrics, control }, resolved.servers.map(c => new Listener(c, ctx)))
  // The parts the options enable sit on the pool's public hooks as a user's
  // would, first: their request hooks see every route, the user's too.
  metrics?.register(pool)
  control?.register(pool)
  ctx.hooks.addAll(resolved.hooks)
  return pool
}
