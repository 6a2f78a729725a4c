// A listener: one address, its configuration, its state and its queued
// lifecycle calls. While it serves it has a Serving (serving.ts): the Node
// server it owns for its whole running life and the Fastify generations on
// it. Calls are queued (queue.ts); state changes in one place, which
// publishes them (state.ts).
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { liveChangeRefusal, serverTls, type NormalizedConfig } from '../config/config.ts'
import { probeNodeInternals } from './node-internals.ts'
import { injectRequestError, restartOptionsError, stopOptionsError } from '../config/options.ts'
import { failureOf, FST_POOL_INVALID_ARGUMENT, FST_POOL_RESTART, FST_POOL_START, FST_POOL_STOP, FST_POOL_TLS, listenerFailures } from '../base/errors.ts'
import { buildGeneration, fastifyOptions, makeInstance } from './build.ts'
import type { Generation } from './generation.ts'
import { MemoryApp } from './memory-app.ts'
import { brand } from '../base/brand.ts'
import { CallQueue } from '../base/queue.ts'
import { checkTransition, publishGeneration, publishState } from './state.ts'
import type { NodeServer, ServerHandle } from './server.ts'
import { reportCut, Serving } from './serving.ts'
import type { ServerTlsOptions, TlsConfig } from '../config/tls.ts'
import { Certificate, clientCertificatesRefusal } from './certificate.ts'
import { Gate } from './overload.ts'
import type { CanaryReport, CanaryStatus, Handlers, ListenerContext, ListenerState, ListenerStatus, OverloadStatus, RestartOptions, RestartReport, StopOptions, StopReport } from '../config/types.ts'
import { Canary, canarySettings, type CanarySettings } from './canary.ts'

/** The reload's way in to renew a kept listener's certificate (not part of the public API). */
export const kRenewTls = Symbol('fastify-pool.renewTls')

export class Listener {
  #config: NormalizedConfig
  #ctx: ListenerContext
  #log: FastifyBaseLogger | undefined
  #state: ListenerState = 'stopped'
  /** Set while it serves (from the start's bind to the stop's last close). */
  #serving: Serving | undefined
  #generations = 0
  #lastError: Error | undefined
  #memoryApp = new MemoryApp()
  #queue = new CallQueue()
  #lastStop: StopReport | undefined
  #readinessHeld = false
  readonly #certificate = new Certificate()
  /** The report of the canary that just ended, for the restart's report. */
  #canaryReport: CanaryReport | undefined
  /** Load shedding: made at the first start with it on, kept across generations (its counts go on). */
  #gate: Gate | undefined

  constructor (config: NormalizedConfig, ctx: ListenerContext) {
    this.#config = config
    this.#ctx = { ...ctx }
    this.#log = this.#logFor(config)
    brand(this, 'listener')
  }

  get name (): string { return this.#config.name }
  /** Canonical bind address as configured (the pool key). */
  get bind (): string { return this.#config.bind }
  get config (): NormalizedConfig { return this.#config }
  /** Public URL: as configured, else derived from the address actually bound. */
  get expose (): string | undefined { return this.#config.expose ?? this.url }
  /** URL of the address actually bound, while running (undefined for unix sockets). */
  get url (): string | undefined { return this.#serving?.url }
  /** Address actually bound, while running: host/port, or the socket path. */
  get address (): AddressInfo | string | undefined { return this.#serving?.address }
  /** The Fastify instance serving requests now (undefined while stopped). */
  get app (): FastifyInstance | undefined { return this.#serving?.gen.app }
  /** The Node server this listener owns while running. */
  get server (): NodeServer | undefined { return this.#serving?.handle.server }
  get state (): ListenerState { return this.#state }
  get isRunning (): boolean { return this.#state === 'running' }
  /** Milliseconds since the listener started listening; 0 when not running. */
  get uptime (): number { return this.#serving === undefined ? 0 : Date.now() - this.#serving.startedAt }
  get handlerKey (): string { return this.#config.handler }
  get logger (): FastifyBaseLogger | undefined { return this.#log }
  /** Requests in progress on every generation: read from the connections, so this costs a walk over them. */
  get inflight (): number { return this.#serving?.inflight ?? 0 }
  /** Upgraded connections (WebSockets) open, of every generation. */
  get upgraded (): number { return this.#serving?.upgraded ?? 0 }

  /** Its load shedding: what it refused and how close it runs to its target; undefined while off (or before its first start). */
  get overload (): OverloadStatus | undefined { return this.#config.overload === false ? undefined : this.#gate?.status }

  /** A snapshot of the listener's state. */
  get status (): ListenerStatus {
    const { name, bind, handler, disabled, optional } = this.#config
    return {
      name,
      bind,
      expose: this.expose,
      url: this.url,
      handler,
      state: this.#state,
      running: this.isRunning,
      disabled,
      optional,
      uptime: this.uptime,
      generation: this.#serving?.gen.number ?? 0,
      inflight: this.inflight,
      upgraded: this.upgraded,
      retiring: this.#serving?.retiring.status() ?? [],
      lastError: this.#lastError?.message,
      lastStop: this.#lastStop,
      certificate: this.#certificate.info,
      overload: this.overload,
      canary: this.canary
    }
  }

  /** True while holdReadiness() makes the readiness route answer 503 although the listener still serves. */
  get readinessHeld (): boolean { return this.#readinessHeld }
  /** Make the readiness route answer 503 (`draining`) while requests are still served, until releaseReadiness(). */
  holdReadiness (): void { this.#readinessHeld = true }
  /** Undo holdReadiness(). */
  releaseReadiness (): void { this.#readinessHeld = false }

  /** @internal replaced by Pool.handler() */
  setHandlers (handlers: Handlers | undefined): void { this.#ctx.handlers = handlers }
  /** @internal */
  get context (): ListenerContext { return this.#ctx }

  /** Start listening. Resolves once the socket is bound; a running listener is left alone. */
  async start (): Promise<void> { await this.launch() }

  /** @internal Like start(); resolves true when this call is the one that started the listener (the pool rolls back only those). */
  launch (): Promise<boolean> { return this.#queue.add('start', 'always', () => this.#start()) }

  /** Drain and close. Resolves once the last connection is gone (or the deadline cut it); undefined when it was not running. */
  stop (options: StopOptions = {}): Promise<StopReport | undefined> {
    // A socket passed to the process (systemd's) stays open after it, and the next process takes its backlog: a hand-off.
    const passed = this.#config.address.kind === 'systemd' || this.#config.address.kind === 'fd'
    const invalid = stopOptionsError(options, 'options')
    if (invalid !== undefined) return Promise.reject(invalid)
    return this.#checked(options, timeout => {
      // A canary running ends first, keeping the serving generation: the stop drains that one.
      this.#serving?.canary?.abort('the listener stops')
      return this.#queue.add('stop', 'always', () => this.#stop(timeout, options.handOff === true || passed))
    })
  }

  /**
   * Swap in a new Fastify instance on the same socket (a stopped listener is
   * started). Resolves as soon as the new instance serves, so a route of
   * this listener can await it; `report.retired` resolves once the old
   * instance has finished its requests (or the deadline cut them) and is closed.
   */
  restart (options: RestartOptions = {}): Promise<RestartReport> {
    return this.#checked(options, (timeout, canary) => this.#queue.add('restart', 'unstarted', () => this.#restart(this.#config, false, canary), old => this.#report(old, timeout)))
  }

  /**
   * Replace the listener's configuration. Stopped: the new one is used from
   * the next start. Running on the same bind: a new generation built from it
   * takes over the live socket, with the new timeouts and TLS material. A
   * running listener cannot move to another bind or switch between HTTP,
   * HTTPS and HTTP/2: that rejects with FST_POOL_RESTART and changes nothing.
   */
  reconfigure (config: NormalizedConfig, options: RestartOptions = {}): Promise<RestartReport> {
    if (typeof config !== 'object' || config === null || typeof config.bind !== 'string' || typeof config.name !== 'string') {
      return Promise.reject(new FST_POOL_INVALID_ARGUMENT('reconfigure() takes a normalised config (from validateConfig())'))
    }
    return this.#checked(options, (timeout, canary) => this.#queue.add('reconfigure', 'never', () => this.#reconfigure(config, canary), old => this.#report(old, timeout)))
  }

  /** Bad stop/restart options reject before anything is queued; `run` gets the drain deadline. */
  #checked<T> (options: RestartOptions, run: (timeout: number, canary: CanarySettings | undefined) => Promise<T>): Promise<T> {
    const invalid = restartOptionsError(options, 'options')
    if (invalid !== undefined) return Promise.reject(invalid)
    return run(options.timeout ?? this.#ctx.stopTimeout, options.canary === undefined ? undefined : canarySettings(options.canary))
  }

  /**
   * Replace TLS settings; fields left out keep their current value (so a
   * rotation that gives only cert and key keeps client-certificate checks).
   * On a running HTTPS listener the live server's secure context is swapped:
   * new connections see the new certificate, open ones keep theirs.
   */
  setTls (tls: TlsConfig): Promise<void> {
    if (typeof tls !== 'object' || tls === null) return Promise.reject(new FST_POOL_TLS(this.name, `setTls() takes TLS settings ({ cert, key, ... }), got ${tls === null ? 'null' : typeof tls}`))
    return this.#queue.add('tls', 'never', async () => { this.#config = this.#certificate.replace(this.#config, tls, this.#serving?.handle, this.#log) })
  }

  /** A reload that keeps this listener: the material its new (equal) configuration read, in force on the live socket. */
  [kRenewTls] (config: NormalizedConfig): Promise<void> {
    return this.#queue.add('tls', 'never', async () => { this.#certificate.renew(config, this.#config, this.#serving?.handle, this.#log) })
  }

  /**
   * Run a request through this listener's Fastify instance, without a
   * socket. While it drains, that instance is closing (its preClose hooks ran)
   * and Fastify refuses inject(): an in-memory instance answers instead, its
   * readiness route saying `draining`.
   */
  async inject (request: InjectOptions | string): Promise<LightMyRequestResponse> {
    const invalid = injectRequestError(request)
    if (invalid !== undefined) throw invalid
    const gen = this.#serving?.gen
    const app = gen !== undefined && !gen.closing ? gen.app : await this.#memoryApp.get(this.#ctx, this.#config, this.#log, this)
    return app.inject(request)
  }

  /** `await using listener = ...` stops it at the end of the block. */
  async [Symbol.asyncDispose] (): Promise<void> { await this.stop() }

  /** The one writer of #state, and the one place that publishes state changes. */
  #setState (to: ListenerState, error?: Error): void {
    const from = this.#state
    checkTransition(this.name, from, to)
    this.#state = to
    if (from === to) return
    const generation = this.#serving?.gen.number ?? 0
    publishState(this.#ctx.owner?.pool, this, from, to, generation, error)
    if (this.#ctx.hooks.has('onStateChange')) {
      this.#ctx.hooks.tell('onStateChange', { pool: this.#ctx.owner?.pool, listener: this, name: this.name, bind: this.bind, from, to, generation, ...(error === undefined ? {} : { error }) }, this.#log)
    }
  }

  async #start (): Promise<boolean> {
    if (this.#state === 'running') return false
    const config = this.#config
    if (config.disabled) throw listenerFailures(FST_POOL_START, [this.#failure(new Error('listener is disabled'))])
    this.#setState('starting')
    this.#lastError = undefined
    try {
      await this.#memoryApp.close()
      // Once per process, before any generation numbers its first response.
      await probeNodeInternals(this.#log === undefined ? undefined : (message) => this.#log?.warn({ node: process.version }, message))
      const tls = serverTls(config)
      this.#certificate.served(tls, true, this.#log)
      this.#serving = await Serving.open(config, tls, handle => this.#build(handle, config, this.#log), () => this.#config.sendTimeout, this.#log, this.#ctx.sockets)
    } catch (err) {
      this.#lastError = err as Error
      this.#setState('failed', err as Error)
      throw listenerFailures(FST_POOL_START, [this.#failure(err as Error)])
    }
    this.#setState('running')
    this.#log?.info({ url: this.url ?? this.address }, 'listener started')
    return true
  }

  /** Returns the generation that was swapped out, to be retired; undefined when the listener was started instead. `changed`: `config` is a new one (reconfigure). */
  async #restart (config: NormalizedConfig, changed: boolean, canary?: CanarySettings): Promise<Generation | undefined> {
    if (this.#state !== 'running') {
      // A stopped (or failed) listener starts from its configuration, on its
      // own address with its handler.
      try {
        await this.#start()
        return undefined
      } catch (err) {
        throw listenerFailures(FST_POOL_RESTART, [failureOf(this.name, this.bind, err)])
      }
    }
    const serving = this.#serving as Serving
    const log = changed ? this.#logFor(config) : this.#log
    let next: Generation
    let tls: ServerTlsOptions | undefined
    try {
      // Certificate files that changed are read again, so that a restart picks up renewed ones.
      tls = serverTls(config)
      next = await this.#build(serving.handle, config, log)
    } catch (err) {
      this.#lastError = err as Error
      this.#log?.error({ err }, 'restart failed; the running generation keeps serving')
      throw listenerFailures(FST_POOL_RESTART, [this.#failure(err as Error)])
    }
    if (canary !== undefined) return this.#judged(serving, next, config, tls, changed, log, canary)
    // From here on nothing awaits: the switch is atomic for incoming requests.
    const old = serving.swap(next, config, tls)
    this.#certificate.served(tls, changed, log)
    this.#config = config
    this.#log = log
    this.#lastError = undefined
    this.#log?.info({ generation: next.number }, 'listener restarted')
    publishGeneration(this, next.number, old.number)
    this.#ctx.hooks.tell('onSwap', { listener: this, name: this.name, bind: this.bind, generation: next.number, previous: old.number }, this.#log)
    return old
  }

  /**
   * The new generation as a canary beside the serving one until the judge
   * decides (canary.ts); then the winner serves alone, as after a swap, and
   * the loser is returned to retire. The verdict is in the report.
   */
  async #judged (serving: Serving, next: Generation, config: NormalizedConfig, tls: ServerTlsOptions | undefined, changed: boolean, log: FastifyBaseLogger | undefined, settings: CanarySettings): Promise<Generation> {
    const canary = new Canary(serving.gen, next, settings)
    serving.startCanary(canary)
    const event = { listener: this, name: this.name, bind: this.bind, generation: next.number, serving: canary.serving.number, share: settings.share }
    this.#log?.info({ generation: next.number, serving: canary.serving.number, share: settings.share, window: settings.window }, 'canary started')
    this.#ctx.hooks.tell('onCanary', event, this.#log)
    const verdict = await canary.verdict
    const report = canary.report(verdict)
    const promoted = verdict.result === 'promoted'
    const loser = serving.endCanary(promoted, config, tls)
    if (promoted) {
      this.#certificate.served(tls, changed, log)
      this.#config = config
      this.#log = log
      this.#lastError = undefined
    }
    this.#canaryReport = report
    const line = { generation: next.number, result: report.result, ...('reason' in report ? { reason: report.reason } : {}), canary: report.canary, serving: report.serving }
    if (report.result === 'rolled-back') this.#log?.warn(line, `canary rolled back: ${report.reason}`)
    else this.#log?.info(line, `canary ${report.result}`)
    this.#ctx.hooks.tell('onCanary', { ...event, report }, this.#log)
    if (promoted) {
      publishGeneration(this, next.number, loser.number)
      this.#ctx.hooks.tell('onSwap', { listener: this, name: this.name, bind: this.bind, generation: next.number, previous: loser.number }, this.#log)
    }
    return loser
  }

  /** A canary running now: its share, step and both generations' figures. */
  get canary (): CanaryStatus | undefined { return this.#serving?.canary?.status() }

  /** End the running canary now: promote it, or abort it (the serving generation serves alone again). False when none runs. */
  endCanary (how: 'promote' | 'abort'): boolean {
    const canary = this.#serving?.canary
    if (canary === undefined || canary.done) return false
    if (how === 'promote') canary.promote()
    else canary.abort('ended by hand')
    return true
  }

  async #reconfigure (config: NormalizedConfig, canary?: CanarySettings): Promise<Generation | undefined> {
    const current = this.#config
    const refuse = (why: string): never => { throw listenerFailures(FST_POOL_RESTART, [this.#failure(new Error(why))]) }
    if (config.name !== current.name) refuse(`reconfigure() cannot rename listener "${current.name}" to "${config.name}"; the name is its key in the pool`)
    if (this.#state !== 'running') {
      await this.#memoryApp.close()
      this.#config = config
      this.#log = this.#logFor(config)
      return undefined
    }
    const refusal = liveChangeRefusal(current, config) ?? clientCertificatesRefusal(current.tls, config.tls)
    if (refusal !== undefined) refuse(refusal)
    return this.#restart(config, true, canary)
  }

  /** What a restart or reconfigure answers: the generation now serving, and the old one's retirement (outside the queue). */
  #report (old: Generation | undefined, timeout: number): RestartReport {
    const serving = this.#serving
    const canary = this.#canaryReport
    this.#canaryReport = undefined
    const report = { name: this.name, bind: this.bind, generation: serving?.gen.number ?? 0, ...(canary === undefined ? {} : { canary }) }
    if (old === undefined || serving === undefined) return { ...report, retired: Promise.resolve(undefined) }
    const limits = { timeout, upgradeTimeout: this.#config.upgradeDrainTimeout, closeWindow: this.#config.upgradeCloseWindow }
    const retired = serving.retiring.add(old, limits,
      (requests, upgraded) => reportCut(this, this.#log, 'restart', old.number, { requests, upgraded }, limits, this.#ctx.hooks),
      (err) => {
        // The new generation serves already: the restart succeeded; say what failed.
        this.#lastError = err
        this.#log?.error({ err, generation: old.number }, 'closing the previous generation failed')
      }).then(r => {
      this.#ctx.hooks.tell('onRetire', { listener: this, name: this.name, bind: this.bind, during: 'restart', ...r }, this.#log)
      return r
    })
    return { ...report, retired }
  }

  async #stop (timeout: number, handOff: boolean): Promise<StopReport | undefined> {
    const serving = this.#serving
    if (serving === undefined || this.#state !== 'running') {
      await this.#memoryApp.close()
      this.#setState('stopped')
      return undefined
    }
    const began = Date.now()
    const number = serving.gen.number
    this.#setState('draining')
    this.#gate?.release()
    const closed = await serving.close({ timeout, handOff, closeWindow: this.#config.upgradeCloseWindow }, drained => reportCut(this, this.#log, 'stop', number, drained, { timeout }, this.#ctx.hooks))
    let error = closed.error
    // An inject() made while the listener was starting built an in-memory instance.
    if (error === undefined) await this.#memoryApp.close().catch((err: unknown) => { error = err as Error })
    const cut = closed.requests + closed.upgraded
    this.#serving = undefined
    this.#gate?.close()
    this.#setState('stopped')
    const report: StopReport = { name: this.name, bind: this.bind, duration: Date.now() - began, cut, upgradedCut: closed.upgraded }
    this.#lastStop = report
    this.#log?.info({ duration: report.duration, cut }, 'listener stopped')
    this.#ctx.hooks.tell('onRetire', { listener: this, name: this.name, bind: this.bind, generation: number, during: 'stop', duration: report.duration, cut, upgradedCut: closed.upgraded }, this.#log)
    if (error !== undefined) {
      this.#lastError = error
      throw listenerFailures(FST_POOL_STOP, [this.#failure(error)])
    }
    return report
  }

  #logFor (config: NormalizedConfig): FastifyBaseLogger | undefined {
    return this.#ctx.logger?.child({ listener: config.name, bind: config.bind }, config.logLevel === undefined ? {} : { level: config.logLevel })
  }

  /** Build a ready generation whose requests come from the handle's server. */
  #build (handle: ServerHandle, config: NormalizedConfig, log: FastifyBaseLogger | undefined): Promise<Generation> {
    const number = ++this.#generations
    const exempt: string[] = []
    return buildGeneration(handle, config.name, number, config.http2,
      (serverFactory, closer) => makeInstance(this.#ctx, config, fastifyOptions(config, log, serverFactory, number), this, number, closer, exempt),
      () => this.#gateFor(config, log, exempt, handle))
  }

  /** The load shedding of a new generation on `handle`'s server: undefined when it is off. `hooked`: the paths its building hooks exempted. */
  #gateFor (config: NormalizedConfig, log: FastifyBaseLogger | undefined, hooked: string[], handle: ServerHandle): Gate | undefined {
    const settings = config.overload
    if (settings === false) {
      // Turned off by a reload: the connections it left unread are read again at once.
      this.#gate?.release()
      return undefined
    }
    const { health } = config
    const exempt = [
      ...(health.liveness === false ? [] : [health.liveness]),
      ...(health.readiness === false ? [] : [health.readiness]),
      ...hooked
    ]
    this.#gate ??= new Gate(settings, log)
    // The server of the listener's running life (a restart keeps it): its accept queue is short while the listener is overloaded.
    this.#gate.configure(settings, exempt, log, handle)
    return this.#gate
  }

  #failure (error: Error): { name: string, bind: string, error: Error } {
    return { name: this.name, bind: this.bind, error }
  }
}

export type { ListenerContext } from '../config/types.ts'
