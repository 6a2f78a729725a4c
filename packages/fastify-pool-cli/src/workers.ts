// Every core: the primary forks N workers with node:cluster, each running the
// whole pool on the listening sockets they share, and owns the signals. The
// primary binds each TCP listener's socket itself (or takes the one it was
// given: by systemd, or by the process it replaces) and hands every worker a
// descriptor of it; the workers accept on it together (the kernel gives each
// connection to one of them), with no hop through the primary. The socket
// outlives every worker, so a worker's death, a roll and an upgrade never
// close the port. Without Node's server handles (node-internals.ts) the
// workers bind through node:cluster's round-robin instead.
// SIGTERM/SIGINT: every worker runs its shutdown sequence under the one
// deadline; exit 0 once all are done. SIGHUP: a rolling reload, one worker
// at a time: a new one with the new configuration starts and reports every
// listener up, then the old one drains. A worker that dies is replaced, with
// a backoff; ready workers that keep dying (5 deaths within 60 s) end the
// whole with exit 1. A replacement that cannot start is tried again, with
// the same backoff, and does not count. SIGUSR2 (and the control API's
// upgrade, through a worker): a successor primary, started with the same
// command line, inherits the sockets and forks its workers on them; once
// every one of them is ready, this primary's workers hand off and it exits.
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { closeSync } from 'node:fs'
import { BUILTIN_DEFAULTS, clusterMetrics, hasIssues, isPoolError, ProcessSampler, type ListenerFailure, type ListenerStatus, type NormalizedConfig, type ProcessFigures, type UpgradeEvent } from 'fastify-pool'
import { bindSocket, canShareSockets, type BoundSocket } from 'fastify-pool/sockets'
import { HANDOFF_ENV, inheritedSockets } from './inherited.ts'
import type { Logger } from 'pino'
import { displayPath, formatIssue, loadConfigFile, problemLine, type FileIssue, type LoadedConfig } from './config-file.ts'
import { holdEarlySignals } from './early-signals.ts'
import { onStopSignals } from './shutdown.ts'
import { causeCode, writeError, writeProblems } from './output.ts'
import { createLogger } from './logger.ts'
import { notifySystemd, predecessor, publishUpgrade, removePidFile, upgradeCounts, Upgrader, UpgradeError, WORKERS_UPGRADE, writePidFile, type Predecessor, type UpgradeOptions } from './upgrade.ts'
import { SOURCE_ENV, type ClusterMessage } from './worker-messages.ts'

export interface WorkersOptions {
  /** The pool file. */
  file: string
  /** How many workers: a number, or 'auto' for one per core. Default: the file's `workers`, else 'auto'. */
  workers?: number | 'auto'
  pretty?: boolean
  /** Arguments the workers are started with (default: this process's). */
  args?: string[]
  /** --log-level (the workers get it with the arguments). */
  logLevel?: string
  /** --pid-file: the primary's pid, written once every worker is ready (an upgrade's successor writes its own). */
  pidFile?: string
  /** The file's text, read by the command (it is not read again). */
  text?: string
}

/** Deaths within this many milliseconds that make a crash loop. */
const CRASH_WINDOW = 60_000
const CRASH_LIMIT = 5
const BACKOFF_MIN = 100
const BACKOFF_MAX = 10_000
// Beyond the drain deadline, how long the workers may take before they are killed.
const CLOSE_MARGIN = 5_000
// One environment string may be 128 KiB at most (Linux); a larger file is read from disk by the worker.
const SOURCE_LIMIT = 64 * 1024

interface Slot {
  worker: Worker
  /** Set once the worker said every listener is up. */
  ready: boolean
  /** The primary asked it to stop (a shutdown or a roll): its exit is expected. */
  leaving: boolean
  /** Started by a roll and not ready yet: a failure is the roll's, not a crash. */
  trial: boolean
}

/** The number of workers a `workers` value asks for. */
export function workerCount (value: number | 'auto' | undefined): number {
  if (value === undefined || value === 'auto') return availableParallelism()
  return value
}

/** Why a configuration cannot run in several workers, if it cannot. */
export function workersRefusal (loaded: LoadedConfig): string[] {
  return loaded.options.servers
    .filter(s => s.address.kind === 'unix')
    .map(s => `listener "${s.name}" listens on ${s.bind}: a unix socket cannot be shared by several workers (node:cluster shares TCP sockets only); give it a TCP address or run one worker`)
}

/**
 * The listening sockets the primary holds for its workers, by bind: one per
 * TCP listener that is not disabled (a disabled one started later binds
 * through node:cluster). A worker gets each as an extra stdio descriptor,
 * from 4 on, named in FASTIFY_POOL_LISTEN_FDS.
 */
class SharedSockets {
  readonly #sockets = new Map<string, BoundSocket>()
  /** False once Node's server handles proved unusable: the workers bind through node:cluster. */
  usable = true

  /**
   * Hold a socket for each listener of `servers` that has none yet; resolves
   * with the binds added. A bind that fails closes what this call added and
   * throws every listener's failure at once.
   */
  async hold (servers: readonly NormalizedConfig[], warn: (message: string) => void): Promise<string[]> {
    const added: string[] = []
    const failures: ListenerFailure[] = []
    // A unix socket is refused with workers (workersRefusal); without Node's server handles the workers bind through node:cluster.
    const shared = servers.filter(s => !s.disabled && s.address.kind !== 'unix' && !this.#sockets.has(s.bind))
    if (shared.length > 0 && this.usable && !await canShareSockets(warn)) this.usable = false
    if (!this.usable) return added
    const inherited = inheritedSockets()
    for (const s of shared) {
      if (this.#sockets.has(s.bind)) continue
      try {
        // The one this process was given for it (systemd's, or its predecessor's), else one bound here (not listening: the workers listen).
        const fd = inherited.forSharing(s.address, s.bind)
        const socket = fd !== undefined
          ? { fd, port: undefined, close: () => { try { closeSync(fd) } catch {} } }
          : await bindSocket(s.address, warn)
        if (socket === undefined) throw new Error(`the socket passed as ${s.bind} is not open in this process`)
        this.#sockets.set(s.bind, socket)
        added.push(s.bind)
      } catch (error) {
        failures.push({ name: s.name, bind: s.bind, error: error as Error })
      }
    }
    if (failures.length > 0) {
      this.drop(added)
      throw Object.assign(new Error('a listening socket could not be bound'), { failures })
    }
    return added
  }

  /** Close the sockets of these binds (the workers that listen on them keep their own descriptors). */
  drop (binds: Iterable<string>): void {
    for (const bind of binds) {
      this.#sockets.get(bind)?.close()
      this.#sockets.delete(bind)
    }
  }

  /** Close those no listener of `servers` has. */
  keepOnly (servers: readonly NormalizedConfig[]): void {
    const wanted = new Set(servers.map(s => s.bind))
    this.drop([...this.#sockets.keys()].filter(b => !wanted.has(b)))
  }

  /** The stdio and environment a worker of `servers` is forked with. */
  forWorker (servers: readonly NormalizedConfig[]): { stdio: Array<number | 'ipc'>, env: Record<string, string> } {
    const fds: number[] = []
    const named: Record<string, number> = {}
    for (const s of servers) {
      const socket = this.#sockets.get(s.bind)
      if (socket === undefined || s.bind in named) continue
      named[s.bind] = 4 + fds.length
      fds.push(socket.fd)
    }
    return { stdio: [0, 1, 2, 'ipc', ...fds], env: fds.length === 0 ? {} : { [HANDOFF_ENV]: JSON.stringify(named) } }
  }

  /** Bind → descriptor, for a successor primary; or why there is none. */
  handOn (): Map<string, number> | string {
    if (!this.usable || this.#sockets.size === 0) return WORKERS_UPGRADE
    return new Map([...this.#sockets].map(([bind, s]) => [bind, s.fd]))
  }
}

/**
 * Run the primary: fork the workers and supervise them until a signal.
 * Resolves with the exit code once every worker is gone.
 */
export async function runPrimary (options: WorkersOptions): Promise<number> {
  const shown = displayPath(options.file)
  const logger = createLogger({ pretty: options.pretty ?? false, level: options.logLevel ?? 'info' })
  // Started by `fastify-pool upgrade`: the primary it replaces waits for its word.
  const replaced = predecessor()
  let loaded: LoadedConfig
  // A SIGTERM or SIGINT while the file loads: nothing is forked, and the exit says which signal.
  const early = holdEarlySignals()
  try {
    loaded = await loadConfigFile(options.file, options.text === undefined ? {} : { text: options.text })
  } catch (err) {
    early.release()
    replaced?.failed(problemLine(err, shown))
    if (!isPoolError(err, 'FST_POOL_VALIDATE') || !hasIssues<FileIssue>(err)) throw err
    writeProblems(err.errors, shown, 'nothing was started')
    return 1
  }
  if (early.signal !== undefined) {
    early.release()
    replaced?.failed(`${early.signal} before the workers started`)
    logger.info({ signal: early.signal }, `${early.signal} before the workers started: nothing was started`)
    return 0
  }
  const count = workerCount(options.workers ?? loaded.options.workers)
  const refusals = count > 1 ? workersRefusal(loaded) : []
  if (refusals.length > 0) {
    early.release()
    replaced?.failed(refusals[0] as string)
    for (const r of refusals) writeError({ code: 'FST_POOL_WORKERS', message: r, file: shown }, `${shown}: ${r}`)
    return 1
  }
  const sockets = new SharedSockets()
  try {
    await sockets.hold(loaded.options.servers, (message) => logger.warn({ node: process.version }, message))
  } catch (err) {
    early.release()
    const failures = (err as { failures?: ListenerFailure[] }).failures ?? []
    logger.error({ failed: failures.map(f => f.name) }, 'the pool could not start; nothing was left running')
    for (const f of failures) {
      const cause = causeCode(f.error)
      writeError({ code: 'FST_POOL_START', message: f.error.message, file: shown, listener: f.name, bind: f.bind, ...(cause === undefined ? {} : { cause }) }, `${shown}: listener "${f.name}" (${f.bind}): ${f.error.message}`)
    }
    replaced?.failed(failures.map(f => `listener "${f.name}" (${f.bind}): ${f.error.message}`).join('; '))
    return 1
  }
  // Sockets the predecessor (or systemd) passed that no listener of this file takes: closed, or they would queue connections nobody accepts.
  const released = inheritedSockets().release()
  if (released.length > 0) logger.info({ binds: released }, 'closed the sockets the previous process served that this configuration has no listener for')
  cluster.setupPrimary({ args: options.args ?? process.argv.slice(2) })
  return new Supervisor({ logger, shown, count, loaded, sockets, replaced, pidFile: options.pidFile }).run(early)
}

interface SupervisorSettings {
  logger: Logger
  shown: string
  count: number
  loaded: LoadedConfig
  sockets: SharedSockets
  replaced: Predecessor | undefined
  pidFile: string | undefined
}

class Supervisor {
  #logger: Logger
  #shown: string
  #count: number
  #loaded: LoadedConfig
  readonly #sockets: SharedSockets
  readonly #upgrader: Upgrader
  /** The primary this one replaces, until it let go (it is stopping). */
  #replaced: Predecessor | undefined
  readonly #pidFile: string | undefined
  /** Set once every worker of the start was ready. */
  #started = false
  /** This primary's workers leave because a successor serves (an upgrade). */
  #handOff = false
  /** A stop for good stops a successor still starting too; the exit waits for it. */
  #aborting: Promise<void> | undefined
  #slots = new Set<Slot>()
  #deaths: number[] = []
  /** Replacements in a row that died before they were ready. */
  #startFailures = 0
  /** Workers started to replace one that died, since the start. */
  #restarts = 0
  readonly #figures = new ProcessSampler()
  #closing = false
  #respawns = new Set<NodeJS.Timeout>()
  #rolling: Promise<void> | undefined
  #rollAgain = false
  #done!: (code: number) => void
  #exitCode = 0

  constructor (settings: SupervisorSettings) {
    this.#logger = settings.logger
    this.#shown = settings.shown
    this.#count = settings.count
    this.#loaded = settings.loaded
    this.#sockets = settings.sockets
    this.#replaced = settings.replaced
    this.#pidFile = settings.pidFile
    this.#upgrader = new Upgrader(() => this.#sockets.handOn(), {
      refusal: () => {
        if (this.#closing) return 'the pool is stopping'
        if (!this.#started) return 'the pool is still starting'
        if (this.#rolling !== undefined) return 'a rolling reload is under way; upgrade once it is done'
        if (this.#replaced !== undefined) return `this process is still taking over from process ${this.#replaced.pid}`
        const sockets = this.#sockets.handOn()
        return typeof sockets === 'string' ? sockets : undefined
      },
      // Deferred: the answer to a worker's control request goes out before the stop does.
      handOver: (successor) => { setImmediate(() => this.#handOver(successor.pid)) },
      stopTimeout: () => this.#timeout,
      log: {
        info: (fields, message) => this.#logger.info(fields, message),
        warn: (fields, message) => this.#logger.warn(fields, message),
        error: (fields, message) => this.#logger.error(fields, message)
      }
    })
  }

  get #timeout (): number { return this.#loaded.options.defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout }

  /** Fork the workers and supervise them; `early` holds the signals until this one's handlers are in (released then). */
  async run (early: { readonly signal: NodeJS.Signals | undefined, release: () => void }): Promise<number> {
    const finished = new Promise<number>(resolve => { this.#done = resolve })
    // The first signal drains every worker; one more kills them (#stop tells which).
    const uninstall = onStopSignals({ first: (signal) => this.#stop(signal), second: (signal) => this.#stop(signal) })
    process.on('SIGHUP', () => { this.roll('SIGHUP') })
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
      this.#started = true
      // Before the line that says so: whoever waits for it finds the pid.
      if (this.#pidFile !== undefined) writePidFile(this.#pidFile)
      this.#logger.info({ file: this.#shown, workers: started.map(s => ({ id: s.worker.id, pid: s.worker.process.pid })) }, `pool started in ${this.#count} workers`)
      // Under systemd (Type=notify, NotifyAccess=all): this process is the service's main one now.
      notifySystemd({ READY: 1, MAINPID: process.pid }, this.#logger)
      this.#tookOver()
    }
    const code = await finished
    uninstall()
    return code
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
        if (message?.['fastify-pool'] === 'ready') { slot.ready = true; slot.trial = false; this.#startFailures = 0; resolve(slot) } else this.#answer(slot, message).catch((err: unknown) => this.#logger.error({ err }, 'a worker request failed'))
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
      this.#logger.warn({ worker: slot.worker.id, pid: slot.worker.process.pid, code, signal, restartIn: delay }, 'a worker died; starting another')
    } else {
      // A replacement that could not start (a port another program holds, a
      // database down): not a crash loop. Try again, waiting longer each
      // time, until one starts; the others serve meanwhile.
      this.#startFailures++
      delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.#startFailures)
      this.#logger.error({ worker: slot.worker.id, pid: slot.worker.process.pid, code, signal, failures: this.#startFailures, restartIn: delay }, `a replacement worker could not start its pool (${this.#startFailures} time(s) in a row); trying again`)
    }
    // Not unref'd: with every worker gone, this timer is what keeps the primary
    // alive until the replacement starts; a stop clears it.
    const timer = setTimeout(() => {
      this.#respawns.delete(timer)
      if (this.#closing) return
      this.#restarts++
      this.#fork().catch(() => {})
    }, delay)
    this.#respawns.add(timer)
  }

  /** Every worker is gone: once a successor still starting is stopped too, exit. */
  #finish (): void {
    const code = this.#exitCode
    const aborting = this.#aborting ?? Promise.resolve()
    aborting.finally(() => {
      if (this.#pidFile !== undefined) removePidFile(this.#pidFile)
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
    replaced.released.then(() => { this.#replaced = undefined }, () => {})
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
    if (this.#closing) {
      if (signal !== undefined) {
        this.#logger.warn({ signal }, `second ${signal}: exiting now without waiting for the drain`)
        for (const s of this.#slots) s.worker.process.kill('SIGKILL')
        this.#exitCode = 1
      }
      return
    }
    this.#closing = true
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

  /** A rolling reload, one worker at a time; asks during a roll fold into one more after it. */
  roll (reason: string): Promise<{ ok: boolean, error?: string }> {
    if (this.#closing) return Promise.resolve({ ok: false, error: 'the pool is stopping' })
    if (this.#upgrader.running) {
      this.#logger.warn({ reason }, `${reason}: no rolling reload while an upgrade is under way (the new process reads the file afresh)`)
      return Promise.resolve({ ok: false, error: 'an upgrade is under way' })
    }
    if (this.#rolling !== undefined) { this.#rollAgain = true; return this.#rolling.then(() => ({ ok: true })) }
    let outcome: { ok: boolean, error?: string } = { ok: true }
    this.#rolling = (async () => {
      do {
        this.#rollAgain = false
        outcome = await this.#rollOnce(reason)
      } while (this.#rollAgain && !this.#closing)
    })().finally(() => { this.#rolling = undefined })
    return this.#rolling.then(() => outcome)
  }

  async #rollOnce (reason: string): Promise<{ ok: boolean, error?: string }> {
    this.#logger.info({ reason, workers: this.#slots.size }, `${reason}: rolling reload, one worker at a time`)
    let next: LoadedConfig
    try {
      next = await loadConfigFile(this.#loaded.file)
    } catch (err) {
      const problems = isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err) ? err.errors.map(i => formatIssue(i, this.#shown)) : [(err as Error).message]
      this.#logger.error({ problems }, 'reload rejected: the file is invalid; every worker keeps the previous configuration')
      return { ok: false, error: problems.join('; ') }
    }
    // The sockets of listeners the file adds, bound before any new worker starts.
    let added: string[]
    try {
      added = await this.#sockets.hold(next.options.servers, (message) => this.#logger.warn({ node: process.version }, message))
    } catch (err) {
      const failures = (err as { failures?: ListenerFailure[] }).failures ?? []
      const problems = failures.map(f => `listener "${f.name}" (${f.bind}): ${f.error.message}`)
      this.#logger.error({ problems }, 'reload failed: a new listener could not be bound; every worker keeps the previous configuration')
      return { ok: false, error: problems.join('; ') }
    }
    for (const old of [...this.#slots].filter(s => !s.leaving)) {
      if (this.#closing) break
      const fresh = await this.#fork(next, true)
      if (!fresh.ready) {
        this.#logger.error('a new worker could not start its pool: the roll stops; the other workers keep the previous configuration')
        // The new workers of this roll keep their own descriptors of what was added.
        this.#sockets.drop(added)
        return { ok: false, error: 'a new worker could not start its pool' }
      }
      const gone = new Promise<void>(resolve => old.worker.once('exit', () => resolve()))
      this.#leave(old, true)
      await gone
    }
    this.#loaded = next
    // Listeners the file dropped: their sockets close with their last worker's.
    this.#sockets.keepOnly(next.options.servers)
    this.#logger.info({ workers: [...this.#slots].map(s => s.worker.id) }, 'rolling reload done: every worker runs the new configuration')
    return { ok: true }
  }

  /** A worker's request to the primary: the status of every worker, the summed metrics, a roll. */
  async #answer (from: Slot, message: ClusterMessage): Promise<void> {
    const kind = message?.['fastify-pool']
    if (kind === 'status-request') {
      const statuses = await Promise.all([...this.#slots].filter(s => s.ready && s.worker.isConnected()).map(s => this.#ask(s)))
      from.worker.send({ 'fastify-pool': 'status-answer', id: message.id, workers: statuses.filter(s => s !== undefined), restarts: this.#restarts, primary: this.#figures.read() } satisfies ClusterMessage)
    } else if (kind === 'metrics-request') {
      const text = await clusterMetrics().catch((err: Error) => `# metrics of the workers could not be collected: ${err.message}\n`)
      from.worker.send({ 'fastify-pool': 'metrics-answer', id: message.id, text: withUpgradeCounts(text) } satisfies ClusterMessage)
    } else if (kind === 'upgrade-request') {
      const options: UpgradeOptions = { ...(message.node === undefined ? {} : { node: message.node }), ...(message.timeout === undefined ? {} : { timeout: message.timeout }) }
      const answer = await this.#upgrader.upgrade(options).then(
        result => ({ result }),
        (err: Error) => ({ error: err.message, statusCode: err instanceof UpgradeError ? err.statusCode : 500 }))
      if (from.worker.isConnected()) from.worker.send({ 'fastify-pool': 'upgrade-answer', id: message.id, ...answer } satisfies ClusterMessage)
    } else if (kind === 'roll-request') {
      const outcome = await this.roll('control API')
      if (from.worker.isConnected()) from.worker.send({ 'fastify-pool': 'roll-answer', id: message.id, ...outcome } satisfies ClusterMessage)
    }
  }

  /** One worker's listeners, asked over IPC (bounded: a busy worker is left out). */
  #ask (slot: Slot): Promise<{ id: number, pid: number | undefined, listeners: ListenerStatus[], process: ProcessFigures } | undefined> {
    return new Promise(resolve => {
      const id = Math.random().toString(36).slice(2)
      const timer = setTimeout(() => { slot.worker.removeListener('message', on); resolve(undefined) }, 2000)
      timer.unref()
      const on = (m: ClusterMessage): void => {
        if (m?.['fastify-pool'] !== 'listeners' || m.id !== id) return
        clearTimeout(timer)
        slot.worker.removeListener('message', on)
        resolve({ id: slot.worker.id, pid: slot.worker.process.pid, listeners: m.listeners, process: m.process })
      }
      slot.worker.on('message', on)
      slot.worker.send({ 'fastify-pool': 'listeners-request', id } satisfies ClusterMessage)
    })
  }
}

/**
 * The upgrade counter as the primary counts it: the primary is the process
 * an upgrade replaces, and the workers' counters (summed by the cluster
 * registry) would count each upgrade once per worker.
 */
function withUpgradeCounts (text: string): string {
  const counts = upgradeCounts()
  return text.replace(/^fastify_pool_upgrades_total\{result="(ok|failed)"\} \S+$/gm, (_line, result: 'ok' | 'failed') => `fastify_pool_upgrades_total{result="${result}"} ${counts[result]}`)
}
