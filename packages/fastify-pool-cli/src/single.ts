// `fastify-pool start` in one process: the pool (pool-process.ts) and the
// supervisor that owns the service around it (supervisor.ts). Signals, the
// control API and --watch ask the supervisor; it says whether the phase
// allows it. SIGTERM/SIGINT drain within the deadline and exit 0 (a second
// one exits at once); an uncaught error drains and exits 1; SIGHUP re-reads
// the file and applies it in place; SIGUSR2 replaces the process
// (upgrade.ts). Run by a package manager's script, it also stops when the
// package manager is gone (parent-watch.ts).
import type { ReloadReport } from 'fastify-pool'
import { displayPath } from './config-file.ts'
import { holdEarlySignals } from './early-signals.ts'
import { inheritedSockets } from './inherited.ts'
import { createLogger } from './logger.ts'
import { packageManager, watchPackageManager } from './parent-watch.ts'
import type { PidFile } from './pid-file.ts'
import { PoolProcess, loadFailed, type PoolProcessSettings, type StopCause } from './pool-process.ts'
import { stopOnSignals } from './shutdown.ts'
import { Supervisor, type ReloadHow } from './supervisor.ts'
import { notifySystemd } from './systemd.ts'
import { poolSockets, predecessor, publishUpgrade, Upgrader } from './upgrade.ts'
import { watchFiles } from './watch.ts'

export interface SingleOptions extends PoolProcessSettings {
  file: string
  watch: boolean
  pidFile: PidFile | undefined
  /** The file's text, read once by the command. */
  text: string | undefined
  /** Write the development certificates the file names (--dev-cert), once signals are held. */
  devCertificates: (log: PoolProcess['logger']) => Promise<void>
}

/** Run the pool in this process until a signal; resolves with 0 once it serves, or with 1 when it could not start. */
export async function runSingle (options: SingleOptions): Promise<number> {
  const { file, shown, pretty, pidFile } = options
  // Started by `fastify-pool upgrade`: the process it replaces waits for its word.
  const replaced = predecessor()
  // Read before anything loads: if it is gone by the time the pool serves, the first look says so.
  const manager = replaced === undefined ? packageManager() : undefined
  // A listener's logger is a child of this one: it has this level unless its configuration sets one.
  const logger = createLogger({ pretty, level: options.logLevel ?? 'info' })
  const early = holdEarlySignals()
  await options.devCertificates(logger)
  // Bound once the pool exists: until then nothing asks for them (signals are held, the control API does not listen).
  let proc: PoolProcess | undefined
  const supervisor = new Supervisor<ReloadReport>({
    reload: async (reason, how) => {
      if (proc === undefined) throw new Error('the pool is still starting')
      return await proc.reload(reason, how)
    },
    log: logger
  })
  const stop = (cause: StopCause, handOff = false): void => {
    if (proc === undefined || !supervisor.stop()) return
    // A stop for good, not the hand-off of an upgrade: a successor still starting goes too (waited for before the exit).
    const successor = handOff ? undefined : upgrader.abort()
    proc.drainAndExit(cause, handOff, successor, () => pidFile?.remove()).catch(() => {})
  }
  const upgrader = new Upgrader({
    supervisor,
    sockets: () => proc === undefined ? 'the pool is still starting' : poolSockets(proc.pool),
    handOver: () => stop({ reason: 'upgrade: the new process serves' }, true),
    stopTimeout: () => proc?.timeout ?? 0,
    failed: () => { if (!supervisor.stopping) pidFile?.write() },
    log: logger
  })
  try {
    proc = await PoolProcess.load(file, logger, options, {
      control: { upgrade: async (o) => ({ ...await upgrader.upgrade(o) }), reload: async (how?: ReloadHow) => await supervisor.reload('control API', how) },
      ...(options.text === undefined ? {} : { text: options.text })
    })
  } catch (err) {
    early.release()
    return loadFailed(err, shown, replaced)
  }
  if (early.signal !== undefined) {
    early.release()
    logger.info({ signal: early.signal }, `${early.signal} before the pool started: nothing was started`)
    return 0
  }
  const pool = proc

  // Signal handlers go in before anything is announced: until then a SIGTERM
  // or SIGHUP would kill the process outright (their default action). The
  // early ones go only after: with no listener left for a moment, Node closes
  // its signal handle, and a signal already received but not yet delivered
  // to JavaScript would be dropped.
  stopOnSignals(logger, stop)
  early.release()
  // A reload that fails is logged by the pool's reload event; a refused one by the supervisor.
  const reload = (reason: string): void => { supervisor.reload(reason).catch(() => {}) }
  process.on('SIGHUP', () => reload('SIGHUP'))
  process.on('SIGUSR2', () => { upgrader.upgrade().catch(() => {}) })

  const failures = await pool.start()
  // Stopped while it started (a signal, the package manager gone): the stop goes on, nothing more starts.
  if (supervisor.stopping) return 0
  if (failures !== undefined) {
    replaced?.failed(failures.map(f => `listener "${f.name}" (${f.bind}): ${f.error.message}`).join('; '))
    return 1
  }
  // Sockets the predecessor handed over for listeners this file no longer has: closed, or they would queue connections nobody accepts.
  const released = inheritedSockets().release()
  if (released.length > 0) logger.info({ binds: released }, 'closed the sockets the previous process served that this configuration has no listener for')
  // Before the line that says so: whoever waits for it finds the pid.
  pidFile?.write()
  pool.announce()
  supervisor.started()
  if (options.watch) {
    pool.onClose(watchFiles(() => [pool.running.loaded.file, ...Object.values(pool.running.loaded.modules)], (changed) => reload(`${displayPath(changed)} changed`)))
    logger.info('watching the pool file and its handler modules: a change reloads the pool (development only)')
  }
  // Under systemd (Type=notify, NotifyAccess=all): this process is the service's main one now.
  notifySystemd({ READY: 1, MAINPID: process.pid }, (fields, message) => logger.warn(fields, message))
  pool.onClose(watchPackageManager(manager, (why) => {
    logger.warn({ parent: process.ppid }, `${why}: the package manager that ran this command is not there to stop it; draining the pool as SIGTERM would`)
    stop({ reason: 'the package manager is gone' })
  }))
  if (replaced !== undefined) {
    logger.info({ previous: replaced.pid }, `serving every listener: process ${replaced.pid} hands over to this one`)
    publishUpgrade({ result: 'ok', previous: replaced.pid, pid: process.pid, node: process.version, duration: Math.round(performance.now()) })
    replaced.ready()
    supervisor.takingOver(replaced.pid, replaced.released)
  }
  return 0
}
