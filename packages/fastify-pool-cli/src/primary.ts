// Every core: the primary of `--workers` forks N workers with node:cluster,
// each running the whole pool (worker.ts) on the sockets the primary holds
// for them (shared-sockets.ts), and owns the service: the signals, the pid
// file, systemd, reloads (roll.ts) and upgrades (upgrade.ts), through the
// one supervisor (supervisor.ts). SIGTERM/SIGINT: every worker runs its
// shutdown sequence under the one deadline; exit 0 once all are done.
// SIGHUP: a rolling reload. A worker that dies is replaced, with a backoff;
// ready workers that keep dying (5 deaths within 60 s) end the whole with
// exit 1. A replacement that cannot start is tried again, with the same
// backoff, and does not count. SIGUSR2 (and the control API's upgrade,
// through a worker): a successor primary, started with the same command
// line, inherits the sockets and forks its workers on them; once every one
// of them is ready, this primary's workers hand off and it exits. An action
// on listeners (restart, stop, start) asked through any worker's control
// API is done by every worker, and answered with one aggregate
// (requests.ts answers the workers).
import cluster from 'node:cluster'
import { BUILTIN_DEFAULTS, type ListenerFailure, type UpgradeEvent } from 'fastify-pool'
import { ProcessSampler } from 'fastify-pool/control'
import type { Logger } from 'pino'
import { watchPackageManager, type PackageManager } from './parent-watch.ts'
import type { PidFile } from './pid-file.ts'
import { canaryRoll } from './canary-roll.ts'
import type { LoadedConfig } from './config-file.ts'
import { rollWorkers, type RollOutcome } from './roll.ts'
import type { SharedSockets } from './shared-sockets.ts'
import { onStopSignals } from './shutdown.ts'
import { Refused, Supervisor, type ReloadHow } from './supervisor.ts'
import { notifySystemd } from './systemd.ts'
import { answer, type PrimaryDesk, type RollAnswer, type Slot } from './requests.ts'
import { publishUpgrade, upgradeCounts, Upgrader, type Predecessor } from './upgrade.ts'
import { SOURCE_ENV, type ClusterMessage } from './worker-messages.ts'

/** Deaths within this many milliseconds that make a crash loop. */
const CRASH_WINDOW = 60_000
const CRASH_LIMIT = 5
const BACKOFF_MIN = 100
const BACKOFF_MAX = 10_000
// Beyond the drain deadline, how long the workers may take before they are killed.
const CLOSE_MARGIN = 5_000
// One environment string may be 128 KiB at most (Linux); a larger file is read from disk by the worker.
const SOURCE_LIMIT = 64 * 1024

export interface PrimarySettings {
  logger: Logger
  shown: string
  count: number
  loaded: LoadedConfig
  sockets: SharedSockets
  replaced: Predecessor | undefined
  /** The package manager that runs this command, if one does (parent-watch.ts). */
  manager: PackageManager | undefined
  pidFile: PidFile | undefined
}

export class Primary {
  readonly #logger: Logger
  readonly #shown: string
  readonly #count: number
  /** The configuration in force (a roll replaces it). */
  #loaded: LoadedConfig
  readonly #sockets: SharedSockets
  readonly #supervisor: Supervisor<RollOutcome>
  readonly #upgrader: Upgrader
  /** The primary this one replaces (the supervisor knows until when it hands over). */
  readonly #replaced: Predecessor | undefined
  readonly #pidFile: PidFile | undefined
  readonly #manager: PackageManager | undefined
  /** This primary's workers leave because a successor serves (an upgrade). */
  #handOff = false
  /** A stop for good stops a successor still starting too; the exit waits for it. */
  #aborting: Promise<void> | undefined
  readonly #slots = new Set<Slot>()
  #deaths: number[] = []
  /** Replacements in a row that died before they were ready. */
  #startFailures = 0
  /** Workers started to replace one that died, since the start. */
  #restarts = 0
  readonly #figures = new ProcessSampler()
  readonly #respawns = new Set<NodeJS.Timeout>()
  #done!: (code: number) => void
  #exitCode = 0
  /** What the workers' requests are answered from (requests.ts). */
  readonly #desk: PrimaryDesk = {
    slots: () => this.#slots,
    busy: () => {
      const phase = this.#supervisor.phase
      if (phase === 'serving') return [...this.#slots].some(s => !s.ready) ? 'a worker is starting (a replacement): act once it serves' : undefined
      return phase === 'stopping' ? 'the pool is stopping' : `the workers are ${phase}: act once that is done`
    },
    actTimeout: () => this.#timeout + 10_000,
    restarts: () => this.#restarts,
    figures: () => this.#figures.read(),
    reload: (reason, how) => this.reload(reason, how),
    upgrade: (options) => this.#upgrader.upgrade(options),
    socket: async (bind) => {
      const server = this.#loaded.options.servers.find(s => s.bind === bind)
      if (server === undefined) return `no listener of the configuration in force listens on ${bind}`
      return await this.#sockets.ensure(server, (m) => this.#logger.warn({ node: process.version }, m)) ?? `the primary holds no socket for ${bind}`
    },
    drop: (binds) => this.#sockets.stopped(binds)
  }

  constructor (settings: PrimarySettings) {
    this.#logger = settings.logger
    this.#shown = settings.shown
    this.#count = settings.count
    this.#loaded = settings.loaded
    this.#sockets = settings.sockets
    this.#replaced = settings.replaced
    this.#pidFile = settings.pidFile
    this.#manager = settings.manager
    this.#supervisor = new Supervisor<RollOutcome>({ reload: (reason, how) => this.#roll(reason, how), log: settings.logger })
    this.#upgrader = new Upgrader({
      supervisor: this.#supervisor,
      sockets: () => this.#sockets.handOn(),
      // Deferred: the answer to a worker's control request goes out before the stop does.
      handOver: (successor) => { setImmediate(() => this.#handOver(successor.pid)) },
      stopTimeout: () => this.#timeout,
      failed: () => { if (!this.#closing) this.#pidFile?.write() },
      log: settings.logger
    })
  }

  get #timeout (): number { return this.#loaded.options.defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout }
  get #closing (): boolean { return this.#supervisor.stopping }

  /** Fork the workers and supervise them; `early` holds the signals until this one's handlers are in (released then). */
  async run (early: { readonly signal: NodeJS.Signals | undefined, release: () => void }): Promise<number> {
    const finished = new Promise<number>(resolve => { this.#done = resolve })
    // The first signal drains every worker; one more kills them (#stop tells which).
    const uninstall = onStopSignals({ first: (signal) => this.#stop(signal), second: (signal) => this.#stop(signal) })
    process.on('SIGHUP', () => { this.reload('SIGHUP').catch(() => {}) })
    process.on('SIGUSR2', () => { this.#upgrader.upgrade().catch(() => {}) })
    // Only now: without any listener for a moment, a signal on its way would be dropped.
    early.release()
    // One that came while the sockets were bound: nothing is forked, and the exit says which.
    if (early.signal !== undefined) {
      uninstall()
      this.#replaced?.failed(`${early.signal} before the workers started`)
      this.#logger.info({ signal: early.signal }, `${early.signal} before the workers started: nothing was started`)
      return 0
    }
    const started = await Promise.all(Array.from({ length: this.#count }, () => this.#fork()))
    if (this.#closing) {
      // Stopped while the workers started: what they started is stopping.
    } else if (started.some(s => !s.ready)) {
      this.#logger.error('a worker could not start its pool; stopping the others')
      this.#replaced?.failed('a worker could not start its pool')
      this.#exitCode = 1
      this.#stop(undefined)
    } else {
      // Before the line that says so: whoever waits for it finds the pid.
      this.#pidFile?.write()
      this.#logger.info({ file: this.#shown, workers: started.map(s => ({ id: s.worker.id, pid: s.worker.process.pid })) }, `pool started in ${this.#count} workers`)
      this.#supervisor.started()
      // Under systemd (Type=notify, NotifyAccess=all): this process is the service's main one now.
      notifySystemd({ READY: 1, MAINPID: process.pid }, (fields, message) => this.#logger.warn(fields, message))
      this.#tookOver()
    }
    const unwatch = watchPackageManager(this.#manager, (why) => {
      this.#logger.warn({ parent: process.ppid }, `${why}: the package manager that ran this command is not there to stop it; draining every worker as SIGTERM would`)
      this.#stop(undefined)
    })
    const code = await finished
    unwatch()
    uninstall()
    return code
  }

  /**
   * A rolling reload, as the supervisor allows it (asks during one fold into
   * one more after it), or with a canary (canary-roll.ts). What it answers
   * crosses the IPC channel: no configuration object.
   */
  async reload (reason: string, how: ReloadHow = {}): Promise<RollAnswer> {
    try {
      const { ok, error, statusCode, problems, report } = await this.#supervisor.reload(reason, how)
      return { ok, ...(error === undefined ? {} : { error }), ...(statusCode === undefined ? {} : { statusCode }), ...(problems === undefined ? {} : { problems }), ...(report === undefined ? {} : { report }) }
    } catch (err) {
      return { ok: false, error: (err as Error).message, ...(err instanceof Refused ? { statusCode: 409 } : {}) }
    }
  }

  async #roll (reason: string, how: ReloadHow = {}, read?: LoadedConfig): Promise<RollOutcome> {
    if (how.canary !== undefined && read === undefined) {
      return await canaryRoll({
        loaded: () => this.#loaded,
        serving: () => [...this.#slots].filter(s => !s.leaving),
        roll: (why, next) => this.#roll(why, {}, next),
        replace: async (slot) => {
          const fresh = await this.#fork(this.#loaded, true)
          if (!fresh.ready) return false
          await this.#leaveAndWait(slot)
          return true
        },
        judgeMs: this.#timeout + 10_000 + 600_000,
        logger: this.#logger,
        shown: this.#shown
      }, reason, { ...how, canary: how.canary })
    }
    const outcome = await rollWorkers(this.#loaded.file, reason, {
      serving: () => [...this.#slots].filter(s => !s.leaving),
      fork: (config) => this.#fork(config, true),
      leave: (slot) => this.#leaveAndWait(slot),
      closing: () => this.#closing,
      sockets: this.#sockets,
      logger: this.#logger,
      shown: this.#shown
    }, read)
    if (outcome.loaded !== undefined) {
      this.#loaded = outcome.loaded
      this.#logger.info({ workers: [...this.#slots].map(s => s.worker.id) }, 'rolling reload done: every worker runs the new configuration')
    }
    return outcome
  }

  /** Ask one worker to leave as a hand-off; resolves once it has exited. */
  #leaveAndWait (slot: Slot): Promise<void> {
    // One that died meanwhile has left already (its exit fired: waiting for it would wait for ever).
    if (slot.worker.isDead() || !this.#slots.has(slot)) return Promise.resolve()
    const gone = new Promise<void>(resolve => slot.worker.once('exit', () => resolve()))
    this.#leave(slot, true)
    return gone
  }

  /**
   * Fork one worker of `config` (default: the one in force); resolves once it
   * reports its listeners up, or has failed. The worker gets the text the
   * primary validated, not the file on disk, which may hold an unfinished
   * edit. A `trial` worker (a roll's) that fails is the roll's failure: its
   * death is not a crash, and it is not replaced.
   */
  #fork (config: LoadedConfig = this.#loaded, trial = false): Promise<Slot> {
    const text = config.text
    const { stdio, env } = this.#sockets.forWorker(config.options.servers)
    cluster.setupPrimary({ stdio })
    const worker = cluster.fork({ ...env, ...(text !== undefined && text.length <= SOURCE_LIMIT ? { [SOURCE_ENV]: Buffer.from(text).toString('base64') } : {}) })
    const slot: Slot = { worker, ready: false, leaving: false, trial }
    this.#slots.add(slot)
    return new Promise<Slot>((resolve) => {
      worker.on('message', (message: ClusterMessage) => {
        if (message?.['fastify-pool'] === 'ready') { slot.ready = true; slot.trial = false; this.#startFailures = 0; resolve(slot) } else answer(this.#desk, slot, message).catch((err: unknown) => this.#logger.error({ err }, 'a worker request failed'))
      })
      worker.once('exit', (code, signal) => {
        this.#slots.delete(slot)
        resolve(slot)
        this.#exited(slot, code, signal)
      })
    })
  }

  #exited (slot: Slot, code: number | null, signal: string | null): void {
    if (this.#closing) {
      // A worker stopped before it was ready exits by SIGTERM or 143, having served nothing.
      if (code !== 0 && slot.ready) this.#exitCode = 1
      if (this.#slots.size === 0) this.#finish()
      return
    }
    if (slot.leaving || slot.trial) return
    let delay: number
    if (slot.ready) {
      // A worker that served died on its own: replace it, unless they keep dying.
      const now = Date.now()
      this.#deaths = [...this.#deaths.filter(at => now - at < CRASH_WINDOW), now]
      if (this.#deaths.length >= CRASH_LIMIT) {
        this.#logger.error({ deaths: this.#deaths.length, window: CRASH_WINDOW }, `workers died ${this.#deaths.length} times within ${CRASH_WINDOW / 1000} s: giving up`)
        this.#exitCode = 1
        this.#stop(undefined)
        return
      }
      delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (this.#deaths.length - 1))
      this.#logger.warn({ worker: slot.worker.id, workerPid: slot.worker.process.pid, code, signal, restartIn: delay }, 'a worker died; starting another')
    } else {
      // A replacement that could not start (a port another program holds, a
      // database down): not a crash loop. Try again, waiting longer each
      // time, until one starts; the others serve meanwhile.
      this.#startFailures++
      delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.#startFailures)
      this.#logger.error({ worker: slot.worker.id, workerPid: slot.worker.process.pid, code, signal, failures: this.#startFailures, restartIn: delay }, `a replacement worker could not start its pool (${this.#startFailures} time(s) in a row); trying again`)
    }
    // Not unref'd: with every worker gone, this timer is what keeps the primary
    // alive until the replacement starts; a stop clears it.
    const timer = setTimeout(() => {
      this.#respawns.delete(timer)
      if (this.#closing) return
      this.#restarts++
      // The sockets of listeners stopped in every worker are held again first: the replacement starts every listener of the file, on the primary's sockets (not through node:cluster).
      this.#sockets.hold(this.#loaded.options.servers, (m) => this.#logger.warn({ node: process.version }, m))
        .catch((err: Error & { failures?: ListenerFailure[] }) => this.#logger.warn({ failed: err.failures?.map(f => `${f.name}: ${f.error.message}`) }, 'a socket of the configuration could not be bound again for the replacement worker'))
        .then(() => { if (!this.#closing) this.#fork().catch(() => {}) }, () => {})
    }, delay)
    this.#respawns.add(timer)
  }

  /** Every worker is gone: once a successor still starting is stopped too, exit. */
  #finish (): void {
    const code = this.#exitCode
    const aborting = this.#aborting ?? Promise.resolve()
    aborting.finally(() => {
      this.#pidFile?.remove()
      this.#logger.info({ code }, this.#handOff ? 'pool handed over: every worker stopped; exiting' : 'every worker stopped; exiting')
      this.#done(code)
    }).catch(() => {})
  }

  /** This primary replaces another: tell it, and the workers, once every worker is ready. */
  #tookOver (): void {
    const replaced = this.#replaced
    if (replaced === undefined) return
    this.#logger.info({ previous: replaced.pid }, `serving every listener: process ${replaced.pid} hands over to this one`)
    const event: Omit<UpgradeEvent, 'counts'> = { result: 'ok', previous: replaced.pid, pid: process.pid, node: process.version, duration: Math.round(performance.now()) }
    this.#publish(event)
    replaced.ready()
    this.#supervisor.takingOver(replaced.pid, replaced.released)
  }

  /** An upgrade, published here and in every worker (where the application and the metrics see it). */
  #publish (event: Omit<UpgradeEvent, 'counts'>): void {
    publishUpgrade(event)
    const full: UpgradeEvent = { ...event, counts: { ...upgradeCounts() } }
    for (const s of this.#slots) {
      if (s.ready && s.worker.isConnected()) s.worker.send({ 'fastify-pool': 'upgrade-event', event: full } satisfies ClusterMessage)
    }
  }

  /** The successor primary serves with its workers: these hand off (their open connections answered with Connection: close), then this one exits 0. */
  #handOver (successor: number | undefined): void {
    this.#logger.info({ successor, workers: this.#slots.size }, `upgrade: process ${successor ?? '?'} and its workers serve every listener; these workers hand over`)
    this.#handOff = true
    this.#stop(undefined)
  }

  /** SIGTERM, SIGINT (or a failure): every worker stops under the one deadline. A second signal kills them. */
  #stop (signal: NodeJS.Signals | undefined): void {
    if (!this.#supervisor.stop()) {
      if (signal !== undefined) {
        this.#logger.warn({ signal }, `second ${signal}: exiting now without waiting for the drain`)
        for (const s of this.#slots) s.worker.process.kill('SIGKILL')
        this.#exitCode = 1
      }
      return
    }
    for (const timer of this.#respawns) clearTimeout(timer)
    this.#respawns.clear()
    // A stop for good, not a hand-off: a successor still starting goes too.
    if (!this.#handOff) this.#aborting = this.#upgrader.abort()
    if (signal !== undefined) this.#logger.info({ signal, timeout: this.#timeout, workers: this.#slots.size }, `${signal}: draining every worker`)
    if (this.#slots.size === 0) { this.#finish(); return }
    for (const s of this.#slots) this.#leave(s, this.#handOff)
    const backstop = setTimeout(() => {
      this.#logger.error(`the workers took longer than the drain deadline (${this.#timeout} ms) + ${CLOSE_MARGIN} ms: killing them`)
      this.#exitCode = 1
      for (const s of this.#slots) s.worker.process.kill('SIGKILL')
    }, this.#timeout + CLOSE_MARGIN)
    backstop.unref()
  }

  /** Ask a worker to stop; `handOff`: the others keep serving, so requests on its open connections are served, not refused. */
  #leave (slot: Slot, handOff: boolean): void {
    slot.leaving = true
    // A worker that is not ready may still be loading its code, with no one
    // listening for messages yet: a signal reaches it wherever it is (it
    // drains what it started, or exits having started nothing).
    if (slot.ready && slot.worker.isConnected()) slot.worker.send({ 'fastify-pool': 'stop', handOff } satisfies ClusterMessage)
    else slot.worker.process.kill('SIGTERM')
  }
}
