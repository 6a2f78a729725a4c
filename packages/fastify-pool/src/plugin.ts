// The Fastify plugin: `app.register(fastifyPool, options)` builds a pool,
// decorates `app.pool`, and ties the pool's life to the app's: `listen()`
// starts it, `close()` drains it.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { hasIssues, isPoolError, validationError, type ValidationIssue } from './base/errors.ts'
import type { PeriodicMonitorOptions } from './observability/monitor.ts'
import { optionIssues, PluginOptionsSchema, POOL_OPTION_NAMES, withDefaults } from './config/options.ts'
import { createPool } from './create.ts'
import type { Pool } from './pool.ts'
import type { PoolOptions } from './resolve.ts'

export interface FastifyPoolOptions extends PoolOptions {
  /**
   * Milliseconds during which readiness answers 503 before the drain starts
   * on `app.close()`, so that load balancers stop sending traffic first
   * (default 0).
   */
  drainDelay?: number
  /** Periodic health checks, started when `listen()` starts the pool: true for the defaults, or their options. */
  monitor?: boolean | PeriodicMonitorOptions
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The listener pool built by the fastify-pool plugin. */
    pool: Pool
  }
}

async function plugin (app: FastifyInstance, options: FastifyPoolOptions): Promise<void> {
  if (typeof options !== 'object' || options === null) {
    throw validationError([{ path: 'options', message: `must be an object with servers, handlers, defaults... (got ${typeof options})` }])
  }
  const issues: ValidationIssue[] = optionIssues(PluginOptionsSchema, options, '')
  const poolOptions: Record<string, unknown> = {}
  for (const key of POOL_OPTION_NAMES) if (key in options) poolOptions[key] = options[key as keyof PoolOptions]
  const { drainDelay, monitor } = withDefaults(PluginOptionsSchema, options) as FastifyPoolOptions & { drainDelay: number }

  let pool: Pool | undefined
  try {
    // The listeners log through the app's logger (a child per listener) unless told otherwise.
    pool = createPool({ ...poolOptions, logger: options.logger ?? app.log } as PoolOptions)
  } catch (err) {
    if (!hasIssues(err) || !isPoolError(err, 'FST_POOL_VALIDATE')) throw err
    // The pool's fields are checked there, once; with the plugin's own problems, all at once.
    issues.push(...err.errors.filter(i => !issues.some(mine => mine.path === i.path)))
  }
  if (issues.length > 0 || pool === undefined) throw validationError(issues)
  const started = pool

  app.decorate('pool', started)
  startWithListen(app, started, monitor === undefined || monitor === false ? undefined : monitor === true ? {} : monitor)

  // Drain the pool alongside the app's own server: the stop begins in
  // preClose (before Fastify closes its server) and close() awaits it in
  // onClose, so both drains share the same wall-clock time and a failed
  // drain makes close() reject.
  let stopping: Promise<unknown> | undefined
  const stop = (): Promise<unknown> => (stopping ??= drain(started, drainDelay))
  app.addHook('preClose', (done) => {
    // Its failure is close()'s: onClose awaits the same promise and rejects with it.
    stop().catch(noop)
    done()
  })
  app.addHook('onClose', async () => { await stop() })
}

/** The pool's shutdown sequence; drainDelay is its readiness delay (else defaults.shutdownDelay). */
async function drain (pool: Pool, drainDelay: number): Promise<void> {
  await pool.stop(drainDelay > 0 ? { delay: drainDelay } : {})
}

/**
 * Make `listen()` start the pool. Fastify resolves `listen()` before its
 * onListen hooks finish and only logs their errors (lib/hooks.js,
 * onListenHookRunner), and onReady runs for a bare `ready()` too, so no hook
 * can promise "after listen() every listener is bound" or make listen()
 * reject. Wrapping `app.listen` does not work either: plugins load during
 * the ready() that listen() itself runs, too late for the call under way.
 *
 * What listen() does after ready() is call the app server's `listen()` and
 * wait for its 'listening' or 'error' event (lib/server.js, listenPromise and
 * listenCallback). So that call is wrapped: the pool starts first, then the
 * app's server binds. A pool that fails to start is emitted as the server's
 * 'error', so listen() rejects with FST_POOL_START and the app's port is
 * never opened; an app port that fails to open stops again the listeners
 * this call started. `ready()` never calls it, so it opens nothing.
 */
function startWithListen (app: FastifyInstance, pool: Pool, monitor: PeriodicMonitorOptions | undefined): void {
  const server = app.server
  const bind = server.listen
  server.listen = function listenAfterPool (this: typeof server, ...args: unknown[]) {
    const before = new Set([...pool].filter(l => l.isRunning))
    pool.start().then(() => {
      if (monitor !== undefined && !pool.monitoring) pool.startMonitor(monitor).catch((err: unknown) => { app.log.error({ err }, 'fastify-pool: the periodic monitor failed to start') })
      const undo = (): void => {
        server.removeListener('listening', keep)
        if (monitor !== undefined) pool.stopMonitor()
        for (const l of pool) if (!before.has(l) && l.isRunning) l.stop().catch((err: unknown) => { app.log.error({ err, listener: l.name }, 'fastify-pool: a listener started for listen() failed to stop after the app\'s port failed to open') })
      }
      const keep = (): void => { server.removeListener('error', undo) }
      server.once('error', undo)
      server.once('listening', keep)
      ;(bind as (...a: unknown[]) => unknown).apply(server, args)
    }, (err: Error) => {
      // Fastify listens for this event around its call to server.listen().
      if (server.listenerCount('error') > 0) server.emit('error', err)
      else app.log.error({ err }, 'fastify-pool: the pool failed to start')
    })
    return server
  } as typeof server.listen
}

/** The fastify-pool plugin: `app.register(fastifyPool, { servers, handlers, ... })`. */
export const fastifyPool = fp(plugin, { fastify: '5.x || 6.x', name: 'fastify-pool' })
export default fastifyPool

function noop (): void {}
