// The pool of one process, as the command runs it: a single process
// (single.ts) and each worker of --workers (worker.ts) alike. It owns the
// pool built from the file, the command's log of what happens to it, the
// file's monitor section and the drain deadline, and the shutdown
// sequence: drain within the deadline (and a backstop past it), then exit.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { BUILTIN_DEFAULTS, CHANNELS, hasIssues, isPoolError, type ListenerFailure, type StateChange } from 'fastify-pool'
import type { Logger } from 'pino'
import { formatIssue, problemLine, type FileIssue } from './config-file.ts'
import { causeCode, writeError, writeProblems } from './output.ts'
import { createPoolFromFile, type FilePool, type PoolFromFileOptions } from './pool-from-file.ts'
import { listenerTable } from './table.ts'
import type { ReloadHow } from './supervisor.ts'

// Beyond the drain deadline, how long closing may take (app onClose hooks)
// before the process gives up and exits 1.
const CLOSE_MARGIN = 5_000

export interface PoolProcessSettings {
  shown: string
  pretty: boolean
  verbose: boolean
  /** --log-level, which wins over the file's on every reload. */
  logLevel: string | undefined
}

/** Why the pool stops: a signal, an uncaught error, or `reason` (an upgrade's hand-over, a primary's word, the package manager gone). */
export interface StopCause { signal?: NodeJS.Signals, err?: unknown, reason?: string }

export class PoolProcess {
  readonly running: FilePool
  readonly logger: Logger
  readonly #settings: PoolProcessSettings
  /** What to undo when closing: event subscriptions, the file watcher. */
  readonly #cleanups: Array<() => void> = []
  /** The monitor settings applied, as JSON ('false' when off). */
  #monitor = 'false'
  #started = false
  #closing: Promise<void> | undefined

  private constructor (running: FilePool, logger: Logger, settings: PoolProcessSettings) {
    this.running = running
    this.logger = logger
    this.#settings = settings
    logger.level = settings.logLevel ?? commandLevel(logger, running.loaded.options.defaults.logLevel)
    this.#cleanups.push(this.#logEvents())
  }

  /** Build the pool from the file (not started); throws what createPoolFromFile() throws (printFileProblems() prints an invalid file's). */
  static async load (file: string, logger: Logger, settings: PoolProcessSettings, options: PoolFromFileOptions): Promise<PoolProcess> {
    const running = await createPoolFromFile(file, { logger, ...options, ...(settings.logLevel === undefined ? {} : { logLevel: settings.logLevel }) })
    const made = new PoolProcess(running, logger, settings)
    logger.debug({ file: settings.shown, servers: running.loaded.options.servers.map(s => s.source), handlers: running.loaded.modules }, 'configuration loaded')
    return made
  }

  get pool (): FilePool['pool'] { return this.running.pool }
  get started (): boolean { return this.#started }
  /** The drain deadline, from the file in force (a reload may change it). */
  get timeout (): number { return this.running.loaded.options.defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout }

  /** Something to undo when the pool stops (a watcher, a handler). */
  onClose (undo: () => void): void { this.#cleanups.push(undo) }

  /** Start every listener; on a failure, one line per listener on stderr, nothing left running, and the listeners' failures returned. */
  async start (): Promise<ListenerFailure[] | undefined> {
    try {
      await this.pool.start()
    } catch (err) {
      if (!hasIssues<ListenerFailure>(err)) throw err
      // The log line carries the stacks only when asked.
      const stacks = this.#settings.verbose || this.logger.isLevelEnabled('debug')
      this.logger.error(stacks ? { err } : { failed: err.errors.map(f => f.name) }, 'the pool could not start; nothing was left running')
      for (const f of err.errors) {
        const cause = causeCode(f.error)
        writeError({ code: 'FST_POOL_START', message: f.error.message, file: this.#settings.shown, listener: f.name, bind: f.bind, ...(cause === undefined ? {} : { cause }) }, `${this.#settings.shown}: listener "${f.name}" (${f.bind}): ${f.error.message}`)
      }
      return err.errors
    }
    // Not once the pool stops (a stop that came while it started): the stop ended the monitor.
    if (this.#closing === undefined) await this.applyMonitor()
    return undefined
  }

  /** Say that the pool serves: the table for people (--pretty), the 'pool started' line with its listeners. */
  announce (): void {
    this.#started = true
    if (this.#settings.pretty) process.stderr.write(listenerTable(this.pool))
    // With --json every line on stdout and stderr is JSON: the 'pool started' entry carries the listeners instead of the table.
    this.logger.info({ file: this.#settings.shown, ...(this.#settings.pretty ? {} : { listeners: this.summary() }) }, 'pool started')
  }

  summary (): unknown {
    return this.pool.status().map(s => ({ name: s.name, bind: s.bind, url: s.url, handler: s.handler, state: s.state }))
  }

  /** Re-read the file and apply it; a file that is invalid or a reload that fails leaves the pool as it was (the reload event says which). */
  async reload (reason: string, how: ReloadHow = {}): ReturnType<FilePool['reload']> {
    this.logger.info({ file: this.#settings.shown, reason, ...(how.canary === undefined ? {} : { canary: how.canary }) }, `${reason}: reloading the configuration`)
    return await this.running.reload(how)
  }

  /**
   * The shutdown sequence under the drain deadline (and a backstop past
   * it), then exit: 0, or 1 after an uncaught error. `handOff`: another
   * process serves these sockets (an upgrade, a roll): requests on open
   * connections are answered with Connection: close. `after` is waited for
   * before the exit (a successor still starting is stopped).
   */
  drainAndExit ({ signal, err, reason }: StopCause, handOff: boolean, after?: Promise<void>, done?: () => void): Promise<void> {
    this.#closing ??= this.#drainAndExit({ ...(signal === undefined ? {} : { signal }), reason: signal ?? reason ?? 'stop' }, err, handOff, after, done)
    return this.#closing
  }

  async #drainAndExit (why: { signal?: NodeJS.Signals, reason: string }, err: unknown, handOff: boolean, after: Promise<void> | undefined, done: (() => void) | undefined): Promise<void> {
    const { logger } = this
    for (const undo of this.#cleanups.splice(0)) undo()
    const timeout = this.timeout
    const backstop = setTimeout(() => {
      logger.error(`closing took longer than the drain deadline (${timeout} ms) + ${CLOSE_MARGIN} ms: exiting`)
      process.exit(1)
    }, timeout + CLOSE_MARGIN)
    backstop.unref()
    if (err !== undefined) logger.error({ err }, 'uncaught error: draining the pool, then exiting')
    else logger.info({ ...why, timeout }, `${why.reason}: draining the pool`)
    try {
      const reports = await this.pool.stop({ timeout, handOff })
      await after
      clearTimeout(backstop)
      done?.()
      logger.info({ cut: reports.reduce((n, r) => n + r.cut, 0) }, this.#started ? 'pool stopped' : 'pool stopped while it was starting: what had started is closed')
    } catch (error) {
      logger.error({ err: error }, 'the pool could not be stopped cleanly')
      process.exit(1)
    }
    // Stopped while starting too: the stop asked for is done, and the start must not go on.
    process.exit(err === undefined ? 0 : 1)
  }

  /** The file's `monitor` section: periodic checks (and auto-restart) started, changed or stopped to match it. */
  async applyMonitor (): Promise<void> {
    const wanted = this.running.loaded.options.monitor
    const text = JSON.stringify(wanted ?? false)
    if (text === this.#monitor) return
    this.#monitor = text
    if (wanted === undefined || wanted === false) this.pool.stopMonitor()
    else await this.pool.startMonitor(wanted === true ? {} : wanted)
  }

  /**
   * The command's log of what happens to its pool, from the pool's events:
   * every reload (SIGHUP, --watch or the control API) and its outcome, and
   * each listener's state changes (at debug).
   */
  #logEvents (): () => void {
    const { logger } = this
    const { shown, pretty } = this.#settings
    const pool = this.pool
    const onReload = (message: unknown): void => {
      const event = message as { pool: unknown, report?: Record<string, unknown>, error?: Error & { errors?: unknown[] } }
      if (event.pool !== pool) return
      const err = event.error
      if (err === undefined) {
        this.applyMonitor().catch((e: unknown) => logger.error({ err: e }, 'could not restart the periodic health checks'))
        logger.level = this.#settings.logLevel ?? commandLevel(logger, this.running.loaded.options.defaults.logLevel)
        if (pretty) process.stderr.write(listenerTable(pool))
        logger.info({ ...event.report, ...(pretty ? {} : { listeners: this.summary() }) }, 'configuration reloaded')
      } else if (isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err)) {
        logger.error({ problems: err.errors.map(i => formatIssue(i, shown)) }, 'reload rejected: the file is invalid; still serving the previous configuration')
      } else {
        logger.error({ err }, 'reload failed and was undone; still serving the previous configuration')
      }
    }
    const onState = (message: unknown): void => {
      const change = message as StateChange
      if (change.pool === pool) logger.debug({ listener: change.name, from: change.from, to: change.to, generation: change.generation }, `listener ${change.name}: ${change.to}`)
    }
    subscribe(CHANNELS.reload, onReload)
    subscribe(CHANNELS.state, onState)
    return () => {
      unsubscribe(CHANNELS.reload, onReload)
      unsubscribe(CHANNELS.state, onState)
    }
  }
}

/**
 * The pool file could not be loaded: the process this one replaces is told
 * why, an invalid file's problems are printed (exit code 1), anything else
 * is thrown on (the command says it once, with --verbose its stack).
 */
export function loadFailed (err: unknown, shown: string, replaced: { failed: (reason: string) => void } | undefined): number {
  replaced?.failed(problemLine(err, shown))
  if (!isPoolError(err, 'FST_POOL_VALIDATE') || !hasIssues<FileIssue>(err)) throw err
  writeProblems(err.errors, shown, 'nothing was started')
  return 1
}

/**
 * The command's own level: the configured logLevel applies to the listeners
 * (each logs through a child at that level), but the command always says
 * when the pool starts, reloads and stops, so it never goes above info.
 */
function commandLevel (logger: Logger, configured: string | undefined): string {
  if (configured === undefined) return 'info'
  const values = logger.levels.values
  return (values[configured] ?? Infinity) < (values.info ?? 30) ? configured : 'info'
}
