// The control API: routes on one listener (usually the admin one) through
// which an operator looks at a running pool and acts on it, per listener,
// chosen by the pool's own selectors (name or bind glob). A bearer token is
// required unless the listener is reachable only from this machine.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isLocalOnly } from '../config/address.ts'
import { DASHBOARD_CSS, DASHBOARD_HEADERS, DASHBOARD_JS, dashboardHtml } from './dashboard.ts'
import { ProcessSampler, type ProcessFigures } from '../observability/process-figures.ts'
import { isPool } from '../base/brand.ts'
import { browserRefusal } from './control-guard.ts'
import { failureOf, isPoolError, quote, type ValidationIssue } from '../base/errors.ts'
import type { Listener } from '../listener/listener.ts'
import { ControlArgumentSchema, ControlObjectSchema, optionIssues, withDefaults } from '../config/options.ts'
import type { CanaryReport, ControlOptions, Field, ListenerStatus, NormalizedConfig } from '../config/types.ts'
import type { PoolHooks } from '../listener/hooks.ts'

/** What the control API reads of a pool and acts on (a Pool is one; this file sits below pool.ts). */
interface Pool extends Iterable<Listener> {
  uptime: () => number
  status: () => ListenerStatus[]
  filter: (field: Field, match: string | RegExp) => Iterable<Listener>
}

/** A pool the control API is registered on: it adds its hooks there. */
interface HookablePool {
  addHook: <K extends 'onBuild' | 'onStateChange'>(name: K, fn: PoolHooks<Listener, unknown>[K]) => unknown
}

export interface ControlSettings { listener: string, token: string | undefined, path: string, reload: ((how: { canary?: number }) => Promise<unknown>) | undefined, upgrade: ControlOptions['upgrade'], local?: boolean, status: (() => Promise<Record<string, unknown>>) | undefined, act?: ControlOptions['act'] }

/** The body of `GET /pool`. */
export interface ControlStatusBody {
  /** Milliseconds the longest-running listener has been up. */
  uptime: number
  /** The listener that serves this API. */
  control: string
  /** The process that answers: pid, Node, uptime, CPU, memory, event-loop delay. */
  process: ProcessFigures
  listeners: ListenerStatus[]
  /** With `fastify-pool start --workers`: every worker's listeners and figures. */
  workers?: Array<{ id: number, pid: number | undefined, listeners: ListenerStatus[], process?: ProcessFigures }>
  /** With workers: how many were started to replace one that died. */
  restarts?: number
  /** With workers: the primary's figures. */
  primary?: ProcessFigures
}

/** What one listener did on a control request. */
export interface ControlResult {
  name: string
  bind: string
  /** With workers: the worker (its id) where the listener did it. */
  worker?: number
  ok: boolean
  /** Its state once the action was done (or began, for one still under way). */
  state: string
  generation: number
  /** Why it failed. */
  error?: string
  /** The action acts on the listener serving this request: it goes on after the answer. */
  pending?: boolean
  /** A restart with a canary: its verdict. */
  canary?: CanaryReport
}

/** The body of `POST /pool/<action>`. */
export interface ControlActionBody {
  ok: boolean
  action: string
  results: ControlResult[]
  error?: string
  /** With workers: what each worker did (done or failed, and why), whichever worker the request reached. */
  workers?: Array<{ id: number, pid: number | undefined, ok: boolean, error?: string }>
}

const ACTIONS = ['restart', 'stop', 'start'] as const
/** What the control API acts with on a pool's listeners (the `act` option replaces it: the command's workers). */
export type ControlAction = typeof ACTIONS[number] | 'canary promote' | 'canary abort'
type Action = ControlAction

export { isLocalOnly }

/**
 * The control option with its defaults, checked against the listeners (the
 * schema checked its shape); undefined when the control API is off.
 */
export function controlSettings (option: ControlOptions | undefined, configs: readonly NormalizedConfig[], issues: ValidationIssue[]): ControlSettings | undefined {
  if (option === undefined || typeof option !== 'object' || option === null) return undefined
  const settings = withDefaults(ControlObjectSchema, option) as ControlSettings
  const served = configs.find(c => c.name === settings.listener)
  settings.local = served !== undefined && isLocalOnly(served.address)
  if (served === undefined) {
    const known = configs.length === 0 ? 'there are no listeners' : `listeners: ${configs.map(c => c.name).join(', ')}`
    issues.push(option.listener === undefined
      ? { path: 'control', message: `serves on the listener named "admin" by default, and there is none (${known}); name one with control.listener` }
      : { path: 'control.listener', message: `names no listener (got ${quote(option.listener)}; ${known})` })
  } else if (settings.token === undefined && !isLocalOnly(served.address)) {
    issues.push({ path: 'control.token', message: `is required: listener "${served.name}" listens on ${served.bind}, which other machines can reach; bind it to 127.0.0.1, ::1 or a unix socket, or set a token` })
  }
  return settings
}

/** Every problem of a control option, its shape and its listener, given the checked listener configs. */
export function controlIssues (option: unknown, configs: readonly NormalizedConfig[]): ValidationIssue[] {
  const issues = optionIssues(ControlArgumentSchema, { control: option }, '')
  if (issues.length === 0) controlSettings(option as ControlOptions | undefined, configs, issues)
  return issues
}

/** The control API of a pool; a clone's control listener acts on the clone. */
export class PoolControl {
  readonly #settings: ControlSettings
  readonly #digest: Buffer | undefined
  readonly #process = new ProcessSampler()

  constructor (settings: ControlSettings) {
    this.#settings = settings
    this.#digest = settings.token === undefined ? undefined : sha256(settings.token)
  }

  get listener (): string { return this.#settings.listener }

  /**
   * Serve the control API on `pool`'s control listener, through its public
   * hooks (call it before the pool starts): each generation of that
   * listener gets the routes and the status page, acting on the pool that
   * made the listener (a clone's on the clone). They answer whatever the
   * load: they are how an operator reaches a busy process, so load shedding
   * never holds them.
   */
  register (pool: HookablePool): this {
    const { listener, path } = this.#settings
    pool.addHook('onBuild', (app, info) => {
      if (info.name !== listener) return
      info.exempt(path, `${path}/*`)
      this.#instrument(app, listener, () => isPool(info.pool) ? info.pool as Pool : undefined)
    })
    watchDraining(pool)
    return this
  }

  /** Add the routes to a generation of the control listener; `pool()` is the pool they act on. */
  #instrument (app: FastifyInstance, listener: string, pool: () => Pool | undefined): void {
    const { path } = this.#settings
    const routes = async (scope: FastifyInstance): Promise<void> => {
      scope.addHook('onRequest', async (request, reply) => this.#authorize(request, reply))
      scope.get(path, async (_request, reply): Promise<ControlStatusBody | undefined> => {
        const p = pool()
        reply.header('cache-control', 'no-store')
        if (p === undefined) return await reply.code(503).send({ error: 'the pool is not ready' })
        const more = this.#settings.status === undefined ? {} : await this.#settings.status().catch((err: Error) => ({ statusError: err.message }))
        return { uptime: p.uptime(), control: listener, process: this.#process.read(), listeners: p.status(), ...more }
      })
      for (const action of ACTIONS) {
        scope.post(`${path}/${action}`, async (request, reply) => this.#act(action, listener, pool(), request, reply))
      }
      scope.post(`${path}/reload`, async (request, reply) => this.#reload(listener, pool(), request, reply))
      for (const how of ['promote', 'abort'] as const) {
        scope.post(`${path}/canary/${how}`, async (request, reply) => {
          const query = request.query as Record<string, unknown>
          const act = this.#settings.act
          const { statusCode, body } = act === undefined ? canaryEnd(pool(), how, query) : await act(`canary ${how}`, query)
          return await reply.code(statusCode).send(body)
        })
      }
      scope.post(`${path}/upgrade`, async (request, reply) => this.#upgrade(request, reply))
    }
    // An operator's requests (ps, the status page's poll every 2 s) are not
    // the traffic a log is for: Fastify's two lines per request are left out
    // of these routes (their logger starts at warn, so errors still show),
    // and one line per request is written at debug instead. What an action
    // does (a listener restarted, a reload) is logged at info by the pool.
    const logLevel = quieter(app.log.level, 'warn')
    app.register(async (scope) => {
      scope.addHook('onResponse', async (request, reply) => {
        app.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, responseTime: reply.elapsedTime }, 'control request')
      })
      scope.register(routes)
      scope.register(async (page) => this.#dashboard(page, path))
    }, { logLevel })
  }

  /**
   * The status page. It holds no data, so with a token it is served without
   * one (a browser cannot add the header to a navigation; the page asks for
   * the token, and sends it with each request for data). Without a token the
   * browser checks of the API apply to it too.
   */
  #dashboard (scope: FastifyInstance, path: string): void {
    if (this.#digest === undefined) scope.addHook('onRequest', async (request, reply) => this.#authorize(request, reply))
    const page = dashboardHtml(path)
    scope.get(`${path}/dashboard`, async (_request, reply) => reply.headers(DASHBOARD_HEADERS).type('text/html; charset=utf-8').send(page))
    scope.get(`${path}/dashboard.css`, async (_request, reply) => reply.headers(DASHBOARD_HEADERS).type('text/css; charset=utf-8').send(DASHBOARD_CSS))
    scope.get(`${path}/dashboard.js`, async (_request, reply) => reply.headers(DASHBOARD_HEADERS).type('text/javascript; charset=utf-8').send(DASHBOARD_JS))
  }

  async #authorize (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (this.#digest === undefined) {
      // No token: the listener is reachable from this machine only, and what a browser here could forge is refused.
      const refusal = browserRefusal(request)
      if (refusal !== undefined) await reply.code(refusal.status).header('cache-control', 'no-store').send({ error: refusal.message })
      return
    }
    const header = request.headers.authorization
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const given = typeof header === 'string' && /^bearer /i.test(header) ? header.slice(7).trim() : undefined
    // Compared as digests: equal lengths, and no timing difference to learn from.
    if (given !== undefined && timingSafeEqual(sha256(given), this.#digest)) return
    reply.header('www-authenticate', 'Bearer realm="fastify-pool"')
    await reply.code(401).send({ error: 'this control API needs an "Authorization: Bearer <token>" header with the pool\'s control token' })
  }

  async #act (action: Action, self: string, pool: Pool | undefined, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const query = { ...request.query as Record<string, unknown> }
    const act = this.#settings.act
    const { statusCode, body } = act === undefined ? await controlAction(pool, action, query, self) : await act(action, query)
    reply.code(statusCode)
    return body
  }

  async #reload (self: string, pool: Pool | undefined, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const reload = this.#settings.reload
    const canary = canaryQuery(request.query as Record<string, unknown>)
    if (typeof canary === 'string') return await reply.code(400).send({ ok: false, error: canary })
    if (reload === undefined) {
      reply.code(501)
      return { ok: false, error: 'this pool was not started from a file: reload it with pool.reload(options)' }
    }
    // A reload that replaces the control listener itself drains it, and this
    // request with it: answer once that begins rather than wait for ourselves.
    let status = 422
    const me = pool === undefined ? undefined : [...pool].find(l => l.name === self)
    const outcome = await raceSelfDrain(me, reload(canary === undefined ? {} : { canary }).then(report => ({ ok: true, report }), (err: Error & { errors?: unknown[], statusCode?: unknown }) => {
      // A reload refused for now (the process is upgrading or stopping: 409) says so; an invalid file or a failed reload is 422.
      if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) status = err.statusCode
      return { ok: false, error: err.message, ...(Array.isArray(err.errors) ? { problems: err.errors } : {}) }
    }))
    if (outcome === 'draining') return { ok: true, pending: true, note: 'the reload replaces the control listener: it goes on after this answer' }
    if (!outcome.ok) reply.code(status)
    return outcome
  }

  /**
   * Replace the process (the command's `upgrade`). The body may set
   * `timeout` (ms) and `node` (the binary to run the successor with); `node`
   * is taken only from a control listener that this machine alone can reach.
   */
  async #upgrade (request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const upgrade = this.#settings.upgrade
    if (upgrade === undefined) {
      reply.code(501)
      return { ok: false, error: 'this pool was not started by fastify-pool start: there is no process to replace' }
    }
    const body = (request.body ?? {}) as Record<string, unknown>
    const problems: string[] = []
    if (typeof body !== 'object' || Array.isArray(body)) problems.push('the body must be a JSON object')
    const { timeout, node } = body
    if (timeout !== undefined && !(Number.isInteger(timeout) && (timeout as number) > 0)) problems.push(`timeout must be a whole number of milliseconds above 0 (got ${quote(timeout)})`)
    if (node !== undefined && (typeof node !== 'string' || node === '')) problems.push(`node must be the path of a node binary (got ${quote(node)})`)
    if (node !== undefined && this.#settings.local !== true) problems.push('node is taken only by a control listener that this machine alone can reach (loopback or a unix socket): from elsewhere the token would choose what this process runs')
    if (problems.length > 0) {
      reply.code(400)
      return { ok: false, error: problems.join('; ') }
    }
    try {
      return { ok: true, ...await upgrade({ ...(timeout === undefined ? {} : { timeout: timeout as number }), ...(node === undefined ? {} : { node: node as string }) }) }
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode
      reply.code(typeof code === 'number' ? code : 500)
      return { ok: false, error: (err as Error).message }
    }
  }
}

const SEVERITY = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const
type Level = keyof typeof SEVERITY

/** Of a logger's level and `floor`, the one that logs less. */
function quieter (level: string, floor: Level): Level {
  return level in SEVERITY && SEVERITY[level as Level] >= SEVERITY[floor] ? level as Level : floor
}

/**
 * `POST <path>/restart|stop|start` on one pool: the listeners the query
 * selects (`name` or `bind` glob; none: every enabled one), acted on in
 * parallel, each with what it did; the answer's status code with it.
 * `self` is the listener serving the request: stopping it needs
 * `force`, and it is answered for as soon as it starts to drain.
 */
export async function controlAction (pool: Pool | undefined, action: Action, query: Record<string, unknown>, self?: string): Promise<{ statusCode: number, body: ControlActionBody }> {
  const selected = select(pool, query)
  if (typeof selected === 'string') return { statusCode: selected.startsWith('no listener') ? 404 : 400, body: { ok: false, action, results: [], error: selected } }
  const force = query.force === '1' || query.force === 'true'
  if (action === 'stop' && !force && self !== undefined && selected.some(l => l.name === self)) {
    return { statusCode: 409, body: { ok: false, action, results: [], error: `listener "${self}" serves this control API: stopping it would cut every command off from the pool until a reload (SIGHUP) or a restart of the process. Leave it out of the glob, or add force=1 (fastify-pool stop --force) to stop it anyway` } }
  }
  const canary = canaryQuery(query)
  if (typeof canary === 'string') return { statusCode: 400, body: { ok: false, action, results: [], error: canary } }
  if (canary !== undefined && action !== 'restart') return { statusCode: 400, body: { ok: false, action, results: [], error: 'canary goes with restart (and reload) only' } }
  const run = (l: Listener): Promise<unknown> => action === 'restart' ? l.restart(canary === undefined ? {} : { canary }) : action === 'stop' ? l.stop() : l.start()
  const results = await untilDone(selected, self, pool, run)
  const ok = results.every(r => r.ok)
  return { statusCode: ok ? 200 : 500, body: { ok, action, results } }
}

/** `?canary=PERCENT`: the share, or why it is refused; undefined when not asked. */
export function canaryQuery (query: Record<string, unknown>): number | string | undefined {
  const given = query.canary
  if (given === undefined) return undefined
  const share = Number(given)
  return typeof given === 'string' && /^\d+(\.\d+)?$/.test(given) && share >= 1 && share <= 99 ? share : `canary must be a percentage from 1 to 99 (got ${quote(given)})`
}

/**
 * `POST <path>/canary/promote|abort`: end the canary of each listener the
 * query selects (none: every one with a canary running).
 */
export function canaryEnd (pool: Pool | undefined, how: 'promote' | 'abort', query: Record<string, unknown>): { statusCode: number, body: ControlActionBody } {
  const action = `canary ${how}`
  const selected = select(pool, query)
  if (typeof selected === 'string') return { statusCode: selected.startsWith('no listener') ? 404 : 400, body: { ok: false, action, results: [], error: selected } }
  const chosen = query.name === undefined && query.bind === undefined ? selected.filter(l => l.canary !== undefined) : selected
  if (chosen.length === 0) return { statusCode: 404, body: { ok: false, action, results: [], error: 'no canary runs' } }
  const results: ControlResult[] = chosen.map(l => {
    const ended = l.endCanary(how)
    return { name: l.name, bind: l.bind, ok: ended, state: l.state, generation: l.status.generation, ...(ended ? {} : { error: 'no canary runs on this listener' }) }
  })
  const ok = results.every(r => r.ok)
  return { statusCode: ok ? 200 : 404, body: { ok, action, results } }
}

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** The listeners a request selects (`?name=GLOB` or `?bind=GLOB`; none: every enabled one), or why none. */
function select (pool: Pool | undefined, query: Record<string, unknown>): Listener[] | string {
  if (pool === undefined) return 'the pool is not ready'
  const fields = (['name', 'bind'] as const).filter(f => query[f] !== undefined)
  if (fields.length > 1) return 'give name or bind, not both'
  const field = fields[0]
  if (field === undefined) return [...pool].filter(l => !l.config.disabled)
  const glob = query[field]
  if (typeof glob !== 'string' || glob === '') return `${field} must be one glob, such as ${field}=public-*`
  let chosen: Listener[]
  try {
    chosen = [...pool.filter(field, glob)]
  } catch (err) {
    if (isPoolError(err, 'FST_POOL_GLOB')) return `${field}: ${err.message}`
    throw err
  }
  // Nothing matches: say what there is to match.
  return chosen.length === 0 ? `no listener matches ${field}=${glob} (${field === 'name' ? 'names' : 'binds'}: ${[...pool].map(l => field === 'name' ? l.name : l.bind).join(', ')})` : chosen
}

/**
 * Run the action on each listener in parallel, and say what each did. The
 * listener serving this request is answered for as soon as it starts to
 * drain (a stop of it waits for this very request to end).
 */
async function untilDone (listeners: Listener[], self: string | undefined, pool: Pool | undefined, run: (l: Listener) => Promise<unknown>): Promise<ControlResult[]> {
  const result = (l: Listener, error?: unknown, pending = false): ControlResult => ({
    name: l.name,
    bind: l.bind,
    ok: error === undefined,
    state: l.state,
    generation: l.status.generation,
    ...(error === undefined ? {} : { error: failureOf(l.name, l.bind, error).error.message }),
    ...(pending ? { pending } : {})
  })
  return Promise.all(listeners.map(async (l) => {
    const done = run(l).then((value) => {
      const canary = (value as { canary?: CanaryReport } | undefined)?.canary
      return canary === undefined ? result(l) : { ...result(l), canary }
    }, (err: unknown) => result(l, err))
    if (l.name !== self) return done
    const outcome = await raceSelfDrain(l, done)
    return outcome === 'draining' ? result(l, undefined, true) : outcome
  }))
}

/** Who waits for a listener to start draining (raceSelfDrain()), told by the onStateChange hook of the pools with a control API. */
const drainWaiters = new WeakMap<object, Set<() => void>>()
const watched = new WeakSet<object>()

function watchDraining (pool: HookablePool): void {
  if (watched.has(pool)) return
  watched.add(pool)
  pool.addHook('onStateChange', (change) => {
    if (change.to !== 'draining') return
    const waiting = drainWaiters.get(change.listener)
    if (waiting !== undefined) for (const resolve of waiting) resolve()
  })
}

/** `work`'s outcome, or 'draining' if `self` (the listener serving the request) starts to drain first. */
async function raceSelfDrain<T> (self: Listener | undefined, work: Promise<T>): Promise<T | 'draining'> {
  if (self === undefined) return await work
  let waiting = drainWaiters.get(self)
  if (waiting === undefined) drainWaiters.set(self, (waiting = new Set()))
  let resolveDraining: (() => void) | undefined
  const draining = new Promise<'draining'>(resolve => { resolveDraining = () => resolve('draining') })
  const waiter = resolveDraining as () => void
  waiting.add(waiter)
  try {
    return await Promise.race([work, draining])
  } finally {
    waiting.delete(waiter)
  }
}
