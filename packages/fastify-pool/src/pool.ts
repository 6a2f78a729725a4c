// The pool: listeners keyed by bind address (and found by name too),
// selected by glob or regex, and started, stopped and restarted together.
import type { FastifyBaseLogger, InjectOptions, LightMyRequestResponse } from 'fastify'
import { bindsOverlap, formatAddress, parseListen } from './config/address.ts'
import { BUILTIN_DEFAULTS, validateConfig, type ListenerConfig, type PoolDefaults, type ExistingListener } from './config/config.ts'
import { brand, isListener, isPool, Owner } from './base/brand.ts'
import { FST_POOL_ADD, FST_POOL_INVALID_ARGUMENT, FST_POOL_NOT_FOUND, FST_POOL_PARAM_EMPTY, FST_POOL_RESTART, hasIssues, settleAll, validationError } from './base/errors.ts'
import { checkHandlers } from './config/handlers.ts'
import { Listener, type ListenerContext } from './listener/listener.ts'
import type { PoolMetrics } from './observability/metrics.ts'
import type { PoolControl } from './control/control.ts'
import { monitorName, PoolMonitor, type MonitorOptions, type MonitorReport, type PeriodicMonitorOptions, type VersionInfo } from './observability/monitor.ts'
import { restartOptionsError, stopOptionsError } from './config/options.ts'
import { CallQueue } from './base/queue.ts'
import { startTogether, stopInSequence } from './sequence.ts'
import { reloadChannel } from './listener/state.ts'
import type { HookName, PoolHooks } from './config/types.ts'
import { reload, type ReloadOptions, type ReloadOutcome } from './reload.ts'
import { checkField, matcher } from './select.ts'
import type { Field, Handlers, ListenerStatus, ReloadEvent, ReloadReport, RestartOptions, RestartReport, StopOptions, StopReport } from './config/types.ts'

interface PoolSettings {
  ctx: ListenerContext
  defaults: PoolDefaults
  baseDir: string | undefined
  metrics: PoolMetrics | undefined
  control: PoolControl | undefined
}

export type WalkFunction = (listener: Listener, bind: string) => boolean | void

export class Pool implements Iterable<Listener> {
  #listeners = new Map<string, Listener>()
  #settings: PoolSettings
  #reloads = new CallQueue()

  /** @internal use createPool() */
  constructor (settings: PoolSettings, listeners: Iterable<Listener> = []) {
    this.#settings = settings
    for (const l of listeners) this.#listeners.set(l.name, l)
    brand(this, 'pool')
    // The first pool made with this context owns its listeners; selections of it do not.
    settings.ctx.owner?.claim(this)
  }

  /** The pool's Prometheus metrics (`metrics` option): `registry` to add metrics of your own, `exposition()` for the text. */
  get metrics (): PoolMetrics | undefined { return this.#settings.metrics }

  /** Number of listeners. */
  get size (): number { return this.#listeners.size }

  /** The pool's logger, if it has one. */
  get logger (): FastifyBaseLogger | undefined { return this.#settings.ctx.logger }

  [Symbol.iterator] (): Iterator<Listener> { return this.#listeners.values() }

  // --- management ------------------------------------------------------------

  /** Validate a config against this pool (unique name, free bind, handler key) and add the listener. */
  storeNew (config: ListenerConfig): Listener {
    const { ctx, defaults, baseDir } = this.#settings
    let normalized
    try {
      normalized = validateConfig({ servers: [config], defaults, handlers: ctx.handlers, baseDir }, this.#existing())
    } catch (err) {
      if (!hasIssues(err)) throw err
      throw validationError(err.errors.map(i => ({ ...i, path: i.path.replace(/^servers\[0\]\.?/, 'config.').replace(/\.$/, '') })))
    }
    const listener = new Listener(normalized[0]!, ctx)
    this.#listeners.set(listener.name, listener)
    return listener
  }

  /**
   * Add a listener built elsewhere. One with the same name or an overlapping
   * bind is replaced, unless it is running: then FST_POOL_ADD is thrown.
   */
  store (listener: Listener): void {
    if (!isListener(listener)) throw new FST_POOL_INVALID_ARGUMENT('store() takes a Listener; use storeNew() for a config')
    const displaced = this.#conflicts(listener)
    const running = displaced.filter(l => l.isRunning)
    if (running.length > 0) {
      throw new FST_POOL_ADD(`"${listener.name}" (${listener.bind}) would replace running listener(s) ${running.map(l => `"${l.name}" (${l.bind})`).join(', ')}; stop them first`)
    }
    for (const l of displaced) this.#listeners.delete(l.name)
    this.#listeners.set(listener.name, listener)
  }

  /** Find a listener by bind address, name, or the address it actually bound (port 0). */
  load (key: string): Listener | undefined {
    if (typeof key !== 'string' || key === '') throw new FST_POOL_PARAM_EMPTY('key')
    const byName = this.#listeners.get(key)
    if (byName !== undefined) return byName
    // Any spelling of a bind finds it: "8080" is ":8080", "[0:0::1]:80" is "[::1]:80".
    const parsed = parseListen(key, this.#settings.baseDir)
    const bind = parsed.ok ? formatAddress(parsed.address) : key
    for (const l of this.#listeners.values()) if (l.bind === bind) return l
    for (const l of this.#listeners.values()) if (boundKey(l) === bind) return l
    return undefined
  }

  has (key: string): boolean { return this.load(key) !== undefined }

  /** Remove a listener from the pool; it is not stopped (see loadAndDelete). Returns whether one was removed. */
  delete (key: string): boolean { return this.loadAndDelete(key) !== undefined }

  loadAndDelete (key: string): Listener | undefined {
    const l = this.load(key)
    if (l !== undefined) this.#listeners.delete(l.name)
    return l
  }

  /** Remove every listener (none is stopped). */
  clean (): void { this.#listeners.clear() }

  /** Call fn for each listener until it returns false. */
  walk (fn: WalkFunction): void {
    for (const l of [...this.#listeners.values()]) if (fn(l, l.bind) === false) return
  }

  /** Like walk, over the listeners named by the keys (binds or names; unknown keys are skipped). No keys: walk all. */
  walkLimit (fn: WalkFunction, ...keys: string[]): void {
    if (keys.length === 0) return this.walk(fn)
    const seen = new Set<Listener>()
    for (const key of keys) {
      const l = this.load(key)
      if (l === undefined || seen.has(l)) continue
      seen.add(l)
      if (fn(l, l.bind) === false) return
    }
  }

  // --- selection -------------------------------------------------------------

  /** A pool of the listeners whose field matches (glob, case-insensitive; or RegExp). It shares the listener objects. */
  filter (field: Field, match: string | RegExp): Pool {
    checkField(field, 'field')
    const test = matcher(match)
    return new Pool(this.#fork(), [...this.#listeners.values()].filter(l => test(l[field])))
  }

  /** The returnField values of the listeners whose field matches (all listeners when match is omitted). */
  list (field: Field, returnField: Field, match?: string | RegExp): string[] {
    checkField(field, 'field')
    checkField(returnField, 'returnField')
    const test = match === undefined ? () => true : matcher(match)
    const out: string[] = []
    for (const l of this.#listeners.values()) {
      const value = l[returnField]
      if (test(l[field]) && value !== undefined) out.push(value)
    }
    return out
  }

  /** An independent pool: new, unstarted listeners from the same configs and handlers. */
  clone (): Pool {
    const settings = this.#fork()
    const owner = new Owner()
    settings.ctx.owner = owner
    // Its own hooks from here on: one added to the clone is not the original's.
    settings.ctx.hooks = settings.ctx.hooks.copy()
    return new Pool(settings, [...this.#listeners.values()].map(l => new Listener(l.config, settings.ctx)))
  }

  /**
   * Add the other pool's listeners. Where both hold a name or a bind, the
   * incoming listener wins; replacing a running one throws FST_POOL_ADD and
   * changes nothing.
   */
  merge (other: Pool): void {
    if (!isPool(other)) throw new FST_POOL_INVALID_ARGUMENT('merge() takes a Pool')
    const incoming = [...other]
    const blocked = incoming.flatMap(l => this.#conflicts(l).filter(d => d.isRunning && d !== l).map(d => `"${l.name}" would replace running "${d.name}" (${d.bind})`))
    if (blocked.length > 0) throw new FST_POOL_ADD(`${blocked.join('; ')}; stop them first`)
    for (const l of incoming) {
      for (const d of this.#conflicts(l)) this.#listeners.delete(d.name)
      this.#listeners.set(l.name, l)
    }
  }

  /** Replace the handlers; each listener uses them from its next start or restart. */
  handler (handlers: Handlers): void {
    if (handlers === undefined || handlers === null) throw new FST_POOL_PARAM_EMPTY('handlers')
    const issues = checkHandlers(handlers)
    if (typeof handlers === 'object' && handlers !== null) {
      for (const l of this.#listeners.values()) {
        if (!(l.handlerKey in handlers)) issues.push({ path: 'handlers', message: `has no key "${l.handlerKey}" used by listener "${l.name}"` })
      }
    }
    if (issues.length > 0) throw validationError(issues)
    this.#settings.ctx.handlers = handlers
    for (const l of this.#listeners.values()) l.setHandlers(handlers)
  }

  /**
   * Add a lifecycle hook (docs/hooks.md): `onOptions` and `onBuild` take part
   * in building every generation made from now on (add them before the
   * start); `onSwap`, `onRetire`, `onCut`, `onStateChange` and `onReload` are
   * told what happened. The hooks are the pool's and its selections'; a
   * clone starts with a copy.
   */
  addHook<K extends HookName> (name: K, fn: PoolHooks<Listener, Pool>[K]): this {
    this.#settings.ctx.hooks.add(name, fn)
    return this
  }

  // --- lifecycle -------------------------------------------------------------

  /**
   * Start every enabled listener that is not running, in parallel. If a
   * required listener fails, the ones this call started are stopped again and
   * FST_POOL_START names every failure.
   */
  async start (): Promise<void> {
    // Not filtered on isRunning: a running listener may have a stop queued;
    // its start queues behind it (and is a no-op if it is still running then).
    await startTogether([...this.#listeners.values()].filter(l => !l.config.disabled), this.logger)
  }

  /**
   * Drain and stop every running listener; resolves when all are closed.
   * The shutdown sequence, within one deadline (`timeout`, counted from this
   * call): readiness answers 503 for `delay` ms while requests are still
   * served; then the listeners drain in groups of equal `stopOrder`, lowest
   * first, each group in parallel. Every listener is stopped even when one
   * fails; the failures are thrown together.
   */
  async stop (options: StopOptions = {}): Promise<StopReport[]> {
    const invalid = stopOptionsError(options, 'options')
    if (invalid !== undefined) throw invalid
    this.stopMonitor()
    const timeout = options.timeout ?? this.#settings.ctx.stopTimeout
    const delay = options.delay ?? this.#settings.defaults.shutdownDelay ?? BUILTIN_DEFAULTS.shutdownDelay
    return stopInSequence([...this.#listeners.values()], timeout, delay, options.handOff === true)
  }

  /**
   * Restart every enabled listener in parallel, each on its own socket
   * (stopped ones are started). Resolves once every new generation serves,
   * with one report per listener; each report's `retired` resolves once that
   * listener's old generation is done and closed.
   */
  restart (options: RestartOptions = {}): Promise<RestartReport[]> {
    const invalid = restartOptionsError(options, 'options')
    if (invalid !== undefined) return Promise.reject(invalid)
    return settleAll([...this.#listeners.values()].filter(l => !l.config.disabled), l => l.restart(options), FST_POOL_RESTART)
  }

  /**
   * Apply a new configuration in place: unchanged listeners are left alone,
   * changed ones are reconfigured on their socket, removed ones drain, added
   * ones start, a moved one starts on its new address before the old drains.
   * An invalid config throws FST_POOL_VALIDATE and changes nothing; a failure
   * while applying is undone and thrown. See reload.ts.
   */
  async reload (options: ReloadOptions, how: { canary?: RestartOptions['canary'] } = {}): Promise<ReloadReport> {
    // One reload at a time: each diffs against what the previous one left.
    return this.#reloads.add('reload', 'never', async () => {
      try {
        const invalid = restartOptionsError(how, 'how')
        if (invalid !== undefined) throw invalid
        const outcome = await reload(this.#listeners.values(), this.#settings, options, how.canary)
        this.#adopt(outcome)
        const event: ReloadEvent = { pool: this, report: outcome.report, defaults: outcome.defaults, stopTimeout: outcome.stopTimeout }
        if (reloadChannel.hasSubscribers) reloadChannel.publish(event)
        this.#settings.ctx.hooks.tell('onReload', event, this.logger)
        return outcome.report
      } catch (err) {
        if (reloadChannel.hasSubscribers) reloadChannel.publish({ pool: this, error: err })
        this.#settings.ctx.hooks.tell('onReload', { pool: this, error: err }, this.logger)
        throw err
      }
    })
  }

  /** Take what an applied reload left: its listeners, handlers and defaults. */
  #adopt (outcome: ReloadOutcome): void {
    this.#listeners = new Map(outcome.listeners.map(l => [l.name, l]))
    const settings = this.#settings
    settings.ctx.handlers = outcome.handlers
    settings.ctx.stopTimeout = outcome.stopTimeout
    settings.defaults = outcome.defaults
    settings.baseDir = outcome.baseDir
  }

  /** True when any listener is running. */
  isRunning (): boolean {
    for (const l of this.#listeners.values()) if (l.isRunning) return true
    return false
  }

  /** Milliseconds the longest-running listener has been up. */
  uptime (): number {
    let max = 0
    for (const l of this.#listeners.values()) max = Math.max(max, l.uptime)
    return max
  }

  /** A snapshot of every listener's state (with metrics on, its traffic too). */
  status (): ListenerStatus[] {
    const traffic = this.#settings.metrics?.traffic(this.#listeners.keys())
    return [...this.#listeners.values()].map(l => {
      const figures = traffic?.get(l.name)
      return figures === undefined ? l.status : { ...l.status, traffic: figures }
    })
  }

  /** Run a request through one listener's Fastify instance, without a socket. */
  inject (key: string, request: InjectOptions | string): Promise<LightMyRequestResponse> {
    const l = this.load(key)
    if (l === undefined) return Promise.reject(new FST_POOL_NOT_FOUND(key))
    return l.inject(request)
  }

  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }

  /** Settings for a derived pool: handler() on it must not change this pool's handlers. */
  #fork (): PoolSettings {
    return { ...this.#settings, ctx: { ...this.#settings.ctx } }
  }

  #existing (): ExistingListener[] {
    return [...this.#listeners.values()].map(l => ({ name: l.name, bind: l.bind, address: l.config.address }))
  }

  #conflicts (listener: Listener): Listener[] {
    const a = listener.config.address
    return [...this.#listeners.values()].filter(l => l !== listener && (l.name === listener.name || bindsOverlap(a, l.config.address)))
  }

  // --- monitoring (see monitor.ts and docs/health.md) ---------------------------

  #monitor: PoolMonitor | undefined

  get #health (): PoolMonitor { return (this.#monitor ??= new PoolMonitor(() => [...this.#listeners.values()])) }

  /**
   * One health report per listener. Checks each listener now with a request to
   * its readiness route, unless periodic checks run (then their last result).
   * With `strict`, rejects with FST_POOL_MONITOR when an enabled listener is ko.
   */
  monitor (version?: VersionInfo, options?: MonitorOptions): Promise<MonitorReport[]> {
    return this.#health.reports(version, options)
  }

  /** The stable, unique monitor name of each listener: `fastify-pool:<name>`. */
  monitorNames (): string[] { return [...this.#listeners.values()].map(monitorName) }

  /** Check every listener periodically, smoothing with rise/fall; pool.stop() ends it. Resolves after the first round. */
  async startMonitor (options?: PeriodicMonitorOptions): Promise<void> { await this.#health.start(options) }

  /** Stop the periodic checks (pool.stop() does it too). */
  stopMonitor (): void { this.#monitor?.stop() }

  /** True while periodic checks run. */
  get monitoring (): boolean { return this.#monitor?.periodic ?? false }
}

function boundKey (l: Listener): string | undefined {
  const a = l.address
  if (a === undefined) return undefined
  if (typeof a === 'string') return `unix:${a}`
  return formatAddress({ kind: 'tcp', host: a.address, port: a.port })
}
