// `fastify-pool start`: build the pool from the file, start it, print what
// listens where, then serve until a signal. SIGTERM/SIGINT drain within the
// deadline and exit 0 (a second one exits at once); an uncaught error drains
// and exits 1; SIGHUP re-reads the file and applies it in place.
import { constants as osConstants } from 'node:os'
import closeWithGrace from 'close-with-grace'
import { BUILTIN_DEFAULTS, hasIssues, isPoolError, type ListenerFailure } from 'fastify-pool'
import { displayPath, formatIssue, missingCertificates, type FileIssue } from './config-file.ts'
import { writeDevCertificate } from './dev-cert.ts'
import type { Logger } from 'pino'
import { createLogger } from './logger.ts'
import { createPoolFromFile, type FilePool } from './pool-from-file.ts'
import { listenerTable } from './table.ts'

export interface StartOptions {
  file: string
  pretty: boolean
  /** Print stack traces of unexpected errors (also with logLevel debug). */
  verbose?: boolean
  /** Write a self-signed certificate where the file names TLS files that do not exist. */
  devCert?: boolean
}

// Beyond the drain deadline, how long closing may take (app onClose hooks)
// before the process gives up and exits 1.
const CLOSE_MARGIN = 5_000

/** The exit code of a process ended by a signal before its pool was up: 128 + the signal's number, as a shell reports it. */
export function signalExitCode (signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 15)
}

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
  reloadAsked: boolean
}

export async function start ({ file, pretty, devCert = false, verbose = false }: StartOptions): Promise<number> {
  const shown = displayPath(file)
  const logger = createLogger({ pretty, level: 'info' })
  const early = holdEarlySignals()
  if (devCert) await writeDevCertificates(file, logger)
  let running: FilePool
  try {
    running = await createPoolFromFile(file, { logger })
  } catch (err) {
    early.release()
    if (!printIssues(err, shown)) throw err
    return 1
  }
  if (early.signal !== undefined) {
    early.release()
    logger.info({ signal: early.signal }, `${early.signal} before the pool started: nothing was started`)
    return signalExitCode(early.signal)
  }
  const { pool } = running
  const defaults = running.loaded.options.defaults
  logger.level = commandLevel(logger, defaults.logLevel)
  logger.debug({ file: shown, servers: running.loaded.options.servers.map(s => s.source), handlers: running.loaded.modules }, 'configuration loaded')
  const session: Session = { running, logger, shown, pretty, timeout: defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout, closing: false, started: false, reloadAsked: false }

  // Signal handlers go in before anything is announced: until then a SIGTERM
  // or SIGHUP would kill the process outright (their default action).
  early.release()
  closeOnSignals(session)
  const onHangup = hangupHandler(session)
  process.on('SIGHUP', onHangup)

  try {
    await pool.start()
  } catch (err) {
    if (!hasIssues<ListenerFailure>(err)) throw err
    // One line per listener on stderr; the log line carries the stacks only when asked.
    const stacks = verbose || logger.isLevelEnabled('debug')
    logger.error(stacks ? { err } : { failed: err.errors.map(f => f.name) }, 'the pool could not start; nothing was left running')
    for (const f of err.errors) process.stderr.write(`${shown}: listener "${f.name}" (${f.bind}): ${f.error.message}\n`)
    return 1
  }
  // The table is for people (--pretty, or a terminal). With --json every line
  // on stdout and stderr is JSON, for log collectors that merge the two; the
  // 'pool started' entry carries the listeners instead.
  if (pretty) process.stderr.write(listenerTable(pool))
  logger.info({ file: shown, ...(pretty ? {} : { listeners: listenerSummary(session) }) }, 'pool started')
  session.started = true
  if (session.reloadAsked) onHangup()
  return 0
}

/**
 * Until the drain handlers are in, a SIGINT or SIGTERM is remembered, and
 * the command stops before it starts anything (Node's default would kill
 * the process in the middle of loading).
 */
function holdEarlySignals (): { readonly signal: NodeJS.Signals | undefined, release: () => void } {
  let signal: NodeJS.Signals | undefined
  const onEarly = (s: NodeJS.Signals): void => { signal ??= s }
  process.on('SIGINT', onEarly)
  process.on('SIGTERM', onEarly)
  return {
    get signal () { return signal },
    release () {
      process.removeListener('SIGINT', onEarly)
      process.removeListener('SIGTERM', onEarly)
    }
  }
}

async function writeDevCertificates (file: string, logger: Logger): Promise<void> {
  for (const pair of await missingCertificates(file)) {
    await writeDevCertificate(pair.cert, pair.key)
    logger.warn({ cert: displayPath(pair.cert), key: displayPath(pair.key) }, 'wrote a self-signed development certificate for localhost (never use it in production)')
  }
}

/** SIGTERM, SIGINT and uncaught errors run the pool's shutdown sequence, then exit; a second signal exits at once. */
function closeOnSignals (session: Session): void {
  const { logger } = session
  closeWithGrace({
    // The drain deadline can change on reload, so the backstop is set when closing starts.
    delay: null,
    // SIGHUP reloads instead of closing.
    skip: ['SIGHUP', 'beforeExit'],
    logger: { error: (message: unknown) => logger.error(message) },
    onSecondSignal: (signal) => logger.warn({ signal }, `second ${signal}: exiting now without waiting for the drain`)
  }, async ({ signal, err }) => {
    session.closing = true
    const timeout = session.timeout
    const backstop = setTimeout(() => {
      logger.error(`closing took longer than the drain deadline (${timeout} ms) + ${CLOSE_MARGIN} ms: exiting`)
      process.exit(1)
    }, timeout + CLOSE_MARGIN)
    backstop.unref()
    if (err !== undefined) logger.error({ err }, 'uncaught error: draining the pool, then exiting')
    else logger.info({ signal, timeout }, `${signal ?? 'close'}: draining the pool`)
    const reports = await session.running.pool.stop({ timeout })
    clearTimeout(backstop)
    logger.info({ cut: reports.reduce((n, r) => n + r.cut, 0) }, 'pool stopped')
    // Stopped while starting: what had started is closed; say so in the exit code.
    if (!session.started && signal !== undefined) process.exit(signalExitCode(signal as NodeJS.Signals))
  })
}

/** Re-read the file and apply it; a file that is invalid or a reload that fails leaves the pool as it was. */
async function reloadFile (session: Session): Promise<void> {
  const { logger, running, pretty, shown } = session
  logger.info({ file: shown }, 'SIGHUP: reloading the configuration')
  try {
    const report = await running.reload()
    const defaults = running.loaded.options.defaults
    session.timeout = defaults.stopTimeout ?? BUILTIN_DEFAULTS.stopTimeout
    logger.level = commandLevel(logger, defaults.logLevel)
    if (pretty) process.stderr.write(listenerTable(running.pool))
    logger.info({ ...report, ...(pretty ? {} : { listeners: listenerSummary(session) }) }, 'configuration reloaded')
  } catch (err) {
    if (isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err)) {
      logger.error({ problems: err.errors.map(i => formatIssue(i, shown)) }, 'reload rejected: the file is invalid; still serving the previous configuration')
    } else {
      logger.error({ err }, 'reload failed and was undone; still serving the previous configuration')
    }
  }
}

/** SIGHUP: one reload at a time; signals during a reload fold into one more after it; before the start, one after it. */
function hangupHandler (session: Session): () => void {
  let reloading: Promise<void> | undefined
  let again = false
  const onHangup = (): void => {
    if (session.closing) return
    if (!session.started) { session.reloadAsked = true; return }
    if (reloading !== undefined) { again = true; return }
    reloading = (async () => {
      do { again = false; await reloadFile(session) } while (again && !session.closing)
    })().finally(() => { reloading = undefined })
  }
  return onHangup
}

function listenerSummary (session: Session): unknown {
  return session.running.pool.status().map(s => ({ name: s.name, bind: s.bind, url: s.url, handler: s.handler, state: s.state }))
}

/** Print a file's validation problems to stderr; false if `err` is not one. */
function printIssues (err: unknown, shown: string): boolean {
  if (!isPoolError(err, 'FST_POOL_VALIDATE') || !hasIssues<FileIssue>(err)) return false
  const issues = err.errors
  for (const issue of issues) process.stderr.write(`${formatIssue(issue, shown)}\n`)
  process.stderr.write(`${shown}: ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing was started\n`)
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
