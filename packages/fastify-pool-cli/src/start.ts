// `fastify-pool start`: build the pool from the file, start it, print what
// listens where, then serve until a signal. SIGTERM/SIGINT drain within the
// deadline and exit 0 (a second one exits at once); an uncaught error drains
// and exits 1; SIGHUP re-reads the file and applies it in place.
import cluster from 'node:cluster'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { BUILTIN_DEFAULTS, ProcessSampler, CHANNELS, hasIssues, isPoolError, isWorkers, workersProblem, type ListenerFailure, type StateChange } from 'fastify-pool'
import { displayPath, formatIssue, missingCertificates, problemLine, readDocument, type FileIssue } from './config-file.ts'
import { readText } from './document.ts'
import { writeDevCertificate } from './dev-cert.ts'
import type { Logger } from 'pino'
import { createLogger } from './logger.ts'
import { createPoolFromFile, type FilePool } from './pool-from-file.ts'
import { listenerTable } from './table.ts'
import { watchFiles } from './watch.ts'
import { holdEarlySignals } from './early-signals.ts'
import { onStopSignals } from './shutdown.ts'
import { causeCode, writeError, writeProblems } from './output.ts'
import { askPrimary, sourceFromPrimary, type ClusterMessage } from './worker-messages.ts'
import { runPrimary, workerCount, type WorkersOptions } from './workers.ts'
import { UsageError } from './usage-error.ts'
import { inheritedSockets } from './inherited.ts'
import { checkPidFile, notifySystemd, poolSockets, predecessor, publishUpgrade, relayUpgrade, removePidFile, Upgrader, UpgradeError, UPGRADE_TIMEOUT, writePidFile, type Predecessor, type UpgradeOptions } from './upgrade.ts'

export interface StartOptions {
  file: string
  pretty: boolean
  /** Print stack traces of unexpected errors (also with logLevel debug). */
  verbose?: boolean
  /** Write a self-signed certificate where the file names TLS files that do not exist. */
  devCert?: boolean
  /** Reload when the pool file or a handler module changes. */
  watch?: boolean
  /** Run the pool in this many processes (node:cluster); default: the file's `workers`, else one. */
  workers?: number | 'auto'
  /** --log-level: the command's level and that of every listener whose configuration sets none. */
  logLevel?: string
  /** --pid-file: the pid of the process that serves, written atomically (an upgrade's successor writes its own). */
  pidFile?: string
}

// Beyond the drain deadline, how long closing may take (app onClose hooks)
// before the process gives up and exits 1.
const CLOSE_MARGIN = 5_000

/** The exit code of a process ended by a signal before its pool was up: 128 + the signal's number, as a shell reports it. */
/** What the running command keeps between its handlers. */
interface Session {
  running: FilePool
  logger: Logger
  shown: string
  pretty: boolean
  /** The drain deadline; a reload may change it. */
  timeout: number
  closing: boolean
  started: boolean
  /** Why a reload was asked for before the pool was up: it runs once it is. */
  reloadAsked: string | undefined
  /** What to undo when closing: event subscriptions, the file watcher. */
  cleanups: Array<() => void>
  /** The monitor settings applied, as JSON ('false' when off). */
  monitor: string
  /** A cluster worker leaving a rolling reload: the others take its clients. */
  handOff: boolean
  /** --log-level, which wins over the file's on every reload. */
  logLevel: string | undefined
  /** Replaces the process on SIGUSR2 and POST /pool/upgrade (upgrade.ts). */
  upgrader: Upgrader | undefined
  /** Set while SIGHUP, --watch or the control API reload the file. */
  reloading: boolean
  /** Set while this process takes over from the one it replaces. */
  predecessor: Predecessor | undefined
  pidFile: string | undefined
}

/**
 * From code: run a pool file in workers, as `fastify-pool start --workers`
 * does. Call it at the top of the script: the workers run the same script,
 * and there it starts the pool instead. Resolves with the exit code once the
 * pool is up (in a worker) or once every worker is gone (in the primary).
 */
export async function runWorkers (options: WorkersOptions): Promise<number> {
  return start({ file: options.file, pretty: options.pretty ?? false, workers: options.workers ?? 'auto', ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }) })
}

export async function start (options: StartOptions): Promise<number> {
  const { file, pretty, devCert = false, watch = false, pidFile } = options
  // A worker starts from the text its primary checked (worker-messages.ts).
  if (cluster.isWorker) return startPool(options)
  if (pidFile !== undefined) checkPidFile(pidFile)
  // Read once: the text serves the workers' count, the development
  // certificates and the pool (or the primary), and the file is not read
  // again until a reload.
  const text = await readText(file)
  const workers = options.workers ?? await fileWorkers(file, text)
  if (workers !== undefined && workerCount(workers) > 1) {
    if (watch) throw new UsageError('start: --watch runs one process; it cannot be used with workers')
    if (devCert) await writeDevCertificates(file, createLogger({ pretty, level: 'info' }), text)
    return runPrimary({ file, workers, pretty, ...(text === undefined ? {} : { text }), ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }), ...(pidFile === undefined ? {} : { pidFile }) })
  }
  return startPool(options, text)
}

/** `--workers TEXT`, checked by the rule of the file's `workers` (WorkersSchema): the value, or a usage error. */
export function workersFlag (text: string): number | 'auto' {
  const value = text === 'auto' ? 'auto' : Number(text)
  if (isWorkers(value)) return value
  throw new UsageError(`start: --workers ${workersProblem(value, `"${text}"`) ?? ''}`)
}

/** The `workers` a pool file asks for, read without checking the rest (the pool's start checks it). */
async function fileWorkers (file: string, text: string | undefined): Promise<number | 'auto' | undefined> {
  const doc = await readDocument(file, text === undefined ? {} : { text }).then(r => r.doc, () => undefined)
  const w = doc?.workers
  return isWorkers(w) ? w : undefined
}

async function startPool ({ file, pretty, devCert = false, verbose = false, watch = false, logLevel, pidFile }: StartOptions, text?: string): Promise<number> {
  const shown = displayPath(file)
  const worker = cluster.isWorker ? cluster.worker : undefined
  // Started by `fastify-pool upgrade`: the process it replaces waits for its word.
  const replaced = worker === undefined ? predecessor() : undefined
  // A listener's logger is a child of this one: it has this level unless its configuration sets one.
  const base = createLogger({ pretty, level: logLevel ?? 'info' })
  // In a cluster every line says which worker wrote it.
  const logger = worker === undefined ? base : base.child({ worker: worker.id })
  const early = holdEarlySignals()
  if (devCert && worker === undefined) await writeDevCertificates(file, logger, text)
  let running: FilePool
  // The control API's upgrade, bound once the session exists.
  const late: { upgrader?: Upgrader } = {}
  const upgradeControl = { upgrade: async (o: UpgradeOptions) => { if (late.upgrader === undefined) throw new UpgradeError('the pool is still starting', 409); return { ...await late.upgrader.upgrade(o) } } }
  try {
    running = await createPoolFromFile(file, { logger, ...(worker === undefined ? { control: upgradeControl, ...(text === undefined ? {} : { text }) } : { ...askingThePrimary(), ...sourceFromPrimary() }) })
  } catch (err) {
    early.release()
    replaced?.failed(problemLine(err, shown))
    if (!printIssues(err, shown)) throw err
    return 1
  }
  if (early.signal !== undefined) {
    early.release()
    logger.info({ signal: early.signal }, `${early.signal} before the pool started: nothing was started`)
    // The stop asked for is done: nothing runs, nothing is bound. A worker's
    // IPC channel would keep it alive: let go of it, and the process ends.
    worker?.disconnect()
    return 0
  }
  const { pool } = running
  const defaults = running.loaded.options.defaults
  logger.level = logLevel ?? commandLevel(logger, defaults.logLevel)
  logger.debug({ file: shown, servers: running.loaded.options.servers.map(s => s.source), handlers: running.loaded.modules }, 'configuration loaded')
  const session: Session = { running, logger, shown, pretty, timeout: defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout, closing: false, started: false, reloadAsked: undefined, cleanups: [], monitor: 'false', handOff: false, logLevel, reloading: false, upgrader: undefined, predecessor: replaced, pidFile }

  // Signal handlers go in before anything is announced: until then a SIGTERM
  // or SIGHUP would kill the process outright (their default action). The
  // early ones go only after: with no listener left for a moment, Node closes
  // its signal handle, and a signal already received but not yet delivered
  // to JavaScript would be dropped.
  const close = closeOnSignals(session)
  early.release()
  session.cleanups.push(logEvents(session))
  const askReload = reloader(session)
  // In a cluster the primary rolls the workers on SIGHUP; a worker ignores it.
  process.on('SIGHUP', () => { if (worker === undefined) askReload('SIGHUP') })
  if (worker !== undefined) session.cleanups.push(answerThePrimary(session, close))
  const upgrader = late.upgrader = session.upgrader = makeUpgrader(session, close, worker !== undefined)
  process.on('SIGUSR2', () => { upgrader.upgrade().catch(() => {}) })

  try {
    await pool.start()
  } catch (err) {
    if (!hasIssues<ListenerFailure>(err)) throw err
    // One line per listener on stderr; the log line carries the stacks only when asked.
    const stacks = verbose || logger.isLevelEnabled('debug')
    logger.error(stacks ? { err } : { failed: err.errors.map(f => f.name) }, 'the pool could not start; nothing was left running')
    for (const f of err.errors) {
      const cause = causeCode(f.error)
      writeError({ code: 'FST_POOL_START', message: f.error.message, file: shown, listener: f.name, bind: f.bind, ...(cause === undefined ? {} : { cause }) }, `${shown}: listener "${f.name}" (${f.bind}): ${f.error.message}`)
    }
    replaced?.failed(err.errors.map(f => `listener "${f.name}" (${f.bind}): ${f.error.message}`).join('; '))
    return 1
  }
  // Sockets the predecessor handed over for listeners this file no longer has: closed, or they would queue connections nobody accepts.
  const released = inheritedSockets().release()
  if (released.length > 0) logger.info({ binds: released }, 'closed the sockets the previous process served that this configuration has no listener for')
  await applyMonitor(session)
  // The table is for people (--pretty, or a terminal). With --json every line
  // on stdout and stderr is JSON, for log collectors that merge the two; the
  // 'pool started' entry carries the listeners instead.
  if (pretty) process.stderr.write(listenerTable(pool))
  // Before the line that says so: whoever waits for it finds the pid.
  if (pidFile !== undefined) writePidFile(pidFile)
  logger.info({ file: shown, ...(pretty ? {} : { listeners: listenerSummary(session) }) }, 'pool started')
  session.started = true
  if (watch) {
    session.cleanups.push(watchFiles(() => [running.loaded.file, ...Object.values(running.loaded.modules)], (changed) => askReload(`${displayPath(changed)} changed`)))
    logger.info('watching the pool file and its handler modules: a change reloads the pool (development only)')
  }
  if (session.reloadAsked !== undefined) askReload(session.reloadAsked)
  if (worker !== undefined) process.send?.({ 'fastify-pool': 'ready' } satisfies ClusterMessage)
  // Under systemd (Type=notify, NotifyAccess=all): this process is the service's main one now.
  if (worker === undefined) notifySystemd({ READY: 1, MAINPID: process.pid }, logger)
  if (replaced !== undefined) {
    logger.info({ previous: replaced.pid }, `serving every listener: process ${replaced.pid} hands over to this one`)
    publishUpgrade({ result: 'ok', previous: replaced.pid, pid: process.pid, node: process.version, duration: Math.round(performance.now()) })
    replaced.ready()
    replaced.released.then(() => { session.predecessor = undefined }, () => {})
  }
  return 0
}

/** The process replacement of a started pool; refused while it starts, stops, takes over, or runs in workers. */
function makeUpgrader (session: Session, close: () => void, worker: boolean): Upgrader {
  return new Upgrader(() => poolSockets(session.running.pool), {
    refusal: () => {
      if (worker) return `this process is a worker: its primary (process ${process.ppid}) upgrades the pool`
      if (session.closing) return 'the pool is stopping'
      if (!session.started) return 'the pool is still starting'
      // The sockets handed over are those of the listeners running now: not while a reload changes them.
      if (session.reloading) return 'a reload is under way; upgrade once it is done'
      if (session.predecessor !== undefined) return `this process is still taking over from process ${session.predecessor.pid}`
      return undefined
    },
    handOver: () => {
      session.handOff = true
      close()
    },
    stopTimeout: () => session.timeout,
    log: {
      info: (fields, message) => session.logger.info(fields, message),
      warn: (fields, message) => session.logger.warn(fields, message),
      error: (fields, message) => session.logger.error(fields, message)
    }
  })
}

async function writeDevCertificates (file: string, logger: Logger, text: string | undefined): Promise<void> {
  for (const pair of await missingCertificates(file, text === undefined ? {} : { text })) {
    await writeDevCertificate(pair.cert, pair.key)
    logger.warn({ cert: displayPath(pair.cert), key: displayPath(pair.key) }, 'wrote a self-signed development certificate for localhost (never use it in production)')
  }
}

/** SIGTERM, SIGINT and uncaught errors run the pool's shutdown sequence, then exit; a second signal exits at once. Returns what closes the same way. */
function closeOnSignals (session: Session): () => void {
  const { logger } = session
  let closing: Promise<void> | undefined
  const close = (why: { signal?: NodeJS.Signals, err?: unknown }): void => { closing ??= drainAndExit(session, why) }
  onStopSignals({
    first: (signal) => close({ signal }),
    second: (signal) => {
      logger.warn({ signal }, `second ${signal}: exiting now without waiting for the drain`)
      process.exit(1)
    },
    error: (err, stopping) => {
      if (!stopping) { close({ err }); return }
      logger.error({ err }, 'uncaught error while stopping: exiting now')
      process.exit(1)
    }
  })
  return () => { if (!session.closing) close({}) }
}

/** The shutdown sequence under the drain deadline (and a backstop past it), then exit: 0, or 1 after an uncaught error. */
async function drainAndExit (session: Session, { signal, err }: { signal?: NodeJS.Signals, err?: unknown }): Promise<void> {
  const { logger } = session
  session.closing = true
  // A stop for good, not the hand-off of an upgrade: a successor still starting goes too (waited for below).
  const successor = session.handOff ? undefined : session.upgrader?.abort()
  for (const undo of session.cleanups.splice(0)) undo()
  const timeout = session.timeout
  const backstop = setTimeout(() => {
    logger.error(`closing took longer than the drain deadline (${timeout} ms) + ${CLOSE_MARGIN} ms: exiting`)
    process.exit(1)
  }, timeout + CLOSE_MARGIN)
  backstop.unref()
  if (err !== undefined) logger.error({ err }, 'uncaught error: draining the pool, then exiting')
  else logger.info({ signal, timeout }, `${signal ?? 'close'}: draining the pool`)
  try {
    const reports = await session.running.pool.stop({ timeout, handOff: session.handOff })
    await successor
    clearTimeout(backstop)
    if (session.pidFile !== undefined) removePidFile(session.pidFile)
    logger.info({ cut: reports.reduce((n, r) => n + r.cut, 0) }, session.started ? 'pool stopped' : 'pool stopped while it was starting: what had started is closed')
  } catch (error) {
    logger.error({ err: error }, 'the pool could not be stopped cleanly')
    process.exit(1)
  }
  // Stopped while starting too: the stop asked for is done, and the start must not go on.
  process.exit(err === undefined ? 0 : 1)
}

/** A worker's pool asks the primary for what spans every worker: the status, the summed metrics, a rolling reload. */
function askingThePrimary (): { control: { status: () => Promise<Record<string, unknown>>, reload: () => Promise<unknown>, upgrade: (o: UpgradeOptions) => Promise<Record<string, unknown>> }, metricsExposition: () => Promise<string> } {
  return {
    control: {
      status: async () => {
        const answer = await askPrimary('status')
        return { workers: answer.workers, restarts: answer.restarts, primary: answer.primary }
      },
      reload: async () => {
        const answer = await askPrimary('roll', 300_000)
        if (!answer.ok) throw new Error(answer.error ?? 'the rolling reload failed')
        return { rolled: true }
      },
      // The primary replaces itself and every worker; this worker's answer comes before its stop.
      upgrade: async (o: UpgradeOptions) => {
        const answer = await askPrimary('upgrade', (o.timeout ?? UPGRADE_TIMEOUT) + 30_000, o)
        if (answer.result === undefined) throw new UpgradeError(answer.error ?? 'the upgrade failed', answer.statusCode ?? 500)
        return { ...answer.result }
      }
    },
    metricsExposition: async () => (await askPrimary('metrics')).text
  }
}

/** A worker answers the primary: its listeners and figures when asked, a stop as SIGTERM would; it publishes the primary's upgrades. */
function answerThePrimary (session: Session, close: () => void): () => void {
  const figures = new ProcessSampler()
  const on = (message: ClusterMessage): void => {
    const kind = message?.['fastify-pool']
    if (kind === 'stop') {
      if (message.handOff === true) session.handOff = true
      close()
    } else if (kind === 'upgrade-event') relayUpgrade(message.event)
    else if (kind === 'listeners-request') process.send?.({ 'fastify-pool': 'listeners', id: message.id, listeners: session.running.pool.status(), process: figures.read() } satisfies ClusterMessage)
  }
  process.on('message', on)
  return () => { process.removeListener('message', on) }
}

/** Re-read the file and apply it; a file that is invalid or a reload that fails leaves the pool as it was (logEvents says which). */
async function reloadFile (session: Session, reason: string): Promise<void> {
  session.logger.info({ file: session.shown, reason }, `${reason}: reloading the configuration`)
  session.reloading = true
  await session.running.reload().catch(() => {}).finally(() => { session.reloading = false })
}

/**
 * Reloads asked for by SIGHUP or the watcher: one at a time; asks during a
 * reload fold into one more after it; before the start, one after it.
 */
function reloader (session: Session): (reason: string) => void {
  let reloading: Promise<void> | undefined
  let again: string | undefined
  const ask = (reason: string): void => {
    if (session.closing) return
    if (!session.started) { session.reloadAsked = reason; return }
    if (reloading !== undefined) { again = reason; return }
    reloading = (async () => {
      let next: string | undefined = reason
      while (next !== undefined && !session.closing) {
        again = undefined
        await reloadFile(session, next)
        next = again
      }
    })().finally(() => { reloading = undefined })
  }
  return ask
}

/**
 * The command's log of what happens to its pool, from the pool's events:
 * every reload (SIGHUP, --watch or the control API) and its outcome, and
 * each listener's state changes (at debug).
 */
function logEvents (session: Session): () => void {
  const { logger, shown } = session
  const pool = session.running.pool
  const onReload = (message: unknown): void => {
    const event = message as { pool: unknown, report?: Record<string, unknown>, error?: Error & { errors?: unknown[] } }
    if (event.pool !== pool) return
    const err = event.error
    if (err === undefined) {
      applyMonitor(session).catch((e: unknown) => logger.error({ err: e }, 'could not restart the periodic health checks'))
      const defaults = session.running.loaded.options.defaults
      session.timeout = defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout
      logger.level = session.logLevel ?? commandLevel(logger, defaults.logLevel)
      if (session.pretty) process.stderr.write(listenerTable(pool))
      logger.info({ ...event.report, ...(session.pretty ? {} : { listeners: listenerSummary(session) }) }, 'configuration reloaded')
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

/** The file's `monitor` section: periodic checks (and auto-restart) started, changed or stopped to match it. */
async function applyMonitor (session: Session): Promise<void> {
  const wanted = session.running.loaded.options.monitor
  const text = JSON.stringify(wanted ?? false)
  if (text === session.monitor) return
  session.monitor = text
  const pool = session.running.pool
  if (wanted === undefined || wanted === false) pool.stopMonitor()
  else await pool.startMonitor(wanted === true ? {} : wanted)
}

function listenerSummary (session: Session): unknown {
  return session.running.pool.status().map(s => ({ name: s.name, bind: s.bind, url: s.url, handler: s.handler, state: s.state }))
}

/** Print a file's validation problems to stderr; false if `err` is not one. */
function printIssues (err: unknown, shown: string): boolean {
  if (!isPoolError(err, 'FST_POOL_VALIDATE') || !hasIssues<FileIssue>(err)) return false
  writeProblems(err.errors, shown, 'nothing was started')
  return true
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
