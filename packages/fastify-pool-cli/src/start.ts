// `fastify-pool start`: what runs where. A cluster worker runs its pool
// (worker.ts); with more than one worker this process is the primary: it
// loads the file, binds the sockets (shared-sockets.ts), then supervises
// the workers (primary.ts); else the pool runs here (single.ts). The file
// is read once here: its text serves the workers' count, the development
// certificates and the pool (or the primary), and it is not read again
// until a reload.
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { type ListenerFailure } from 'fastify-pool'
import { isWorkers, workersProblem } from 'fastify-pool/config'
import type { Logger } from 'pino'
import { displayPath, loadConfigFile, missingCertificates, readDocument, type LoadedConfig } from './config-file.ts'
import { readText } from './document.ts'
import { writeDevCertificate } from './dev-cert.ts'
import { holdEarlySignals } from './early-signals.ts'
import { inheritedSockets } from './inherited.ts'
import { createLogger } from './logger.ts'
import { causeCode, writeError } from './output.ts'
import { PidFile } from './pid-file.ts'
import { Primary } from './primary.ts'
import { packageManager } from './parent-watch.ts'
import { loadFailed } from './pool-process.ts'
import { SharedSockets } from './shared-sockets.ts'
import { runSingle } from './single.ts'
import { predecessor } from './upgrade.ts'
import { UsageError } from './usage-error.ts'
import { runWorker } from './worker.ts'

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
  /** --pid-file: the pid of the process that owns the service (pid-file.ts). */
  pidFile?: string
  /** With workers: the arguments they are started with (default: this process's). */
  args?: string[]
}

/**
 * From code: run a pool file in workers, as `fastify-pool start --workers`
 * does. Call it at the top of the script: the workers run the same script,
 * and there it starts the pool instead. Resolves with the exit code once the
 * pool is up (in a worker) or once every worker is gone (in the primary).
 */
export async function runWorkers (options: WorkersOptions): Promise<number> {
  return start({ file: options.file, pretty: options.pretty ?? false, workers: options.workers ?? 'auto', ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }), ...(options.args === undefined ? {} : { args: options.args }) })
}

export async function start (options: StartOptions): Promise<number> {
  const { file, pretty, devCert = false, watch = false } = options
  const settings = { shown: displayPath(file), pretty, verbose: options.verbose ?? false, logLevel: options.logLevel }
  // A worker starts from the text its primary checked (worker-messages.ts); the pid file and the rest are the primary's.
  if (cluster.isWorker) return runWorker(file, createLogger({ pretty, level: options.logLevel ?? 'info' }), settings)
  const pidFile = options.pidFile === undefined ? undefined : new PidFile(options.pidFile)
  const text = await readText(file)
  const workers = options.workers ?? await fileWorkers(file, text)
  if (workers !== undefined && workerCount(workers) > 1) {
    if (watch) throw new UsageError('start: --watch runs one process; it cannot be used with workers')
    if (devCert) await writeDevCertificates(file, createLogger({ pretty, level: 'info' }), text)
    return runPrimary({ file, workers, pretty, ...(text === undefined ? {} : { text }), ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }), ...(pidFile === undefined ? {} : { pidFile }), ...(options.args === undefined ? {} : { args: options.args }) })
  }
  return runSingle({ ...settings, file, watch, pidFile, text, devCertificates: async (logger) => { if (devCert) await writeDevCertificates(file, logger, text) } })
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

async function writeDevCertificates (file: string, logger: Logger, text: string | undefined): Promise<void> {
  for (const pair of await missingCertificates(file, text === undefined ? {} : { text })) {
    await writeDevCertificate(pair.cert, pair.key)
    logger.warn({ cert: displayPath(pair.cert), key: displayPath(pair.key) }, 'wrote a self-signed development certificate for localhost (never use it in production)')
  }
}

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
 * Run the primary: fork the workers and supervise them until a signal.
 * Resolves with the exit code once every worker is gone.
 */
async function runPrimary (options: WorkersOptions & {
  /** --pid-file: the primary's pid, written once every worker is ready (an upgrade's successor writes its own); a worker never writes it. */
  pidFile?: PidFile
  /** The file's text, read by the command (it is not read again). */
  text?: string
}): Promise<number> {
  const shown = displayPath(options.file)
  const logger = createLogger({ pretty: options.pretty ?? false, level: options.logLevel ?? 'info' })
  // Started by `fastify-pool upgrade`: the primary it replaces waits for its word.
  const replaced = predecessor()
  // Read before anything loads: if it is gone by the time the workers serve, the first look says so.
  const manager = replaced === undefined ? packageManager() : undefined
  let loaded: LoadedConfig
  // A SIGTERM or SIGINT while the file loads: nothing is forked, and the exit says which signal.
  const early = holdEarlySignals()
  try {
    loaded = await loadConfigFile(options.file, options.text === undefined ? {} : { text: options.text })
  } catch (err) {
    early.release()
    return loadFailed(err, shown, replaced)
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
  return await new Primary({ logger, shown, count, loaded, sockets, replaced, manager, pidFile: options.pidFile }).run(early)
}
