// A rolling reload of the workers of --workers (SIGHUP, `fastify-pool
// reload`, the control API), one worker at a time: the file is read and
// checked; the sockets of listeners it adds are bound before any new worker
// starts; then, for each old worker, a new one with the new configuration
// starts and reports every listener up, and only then does the old one
// drain (a hand-off: the new one serves its sockets). A new worker that
// cannot start stops the roll: the workers not yet replaced keep the
// previous configuration, and nothing counts as a crash.
import { hasIssues, isPoolError, type ListenerFailure } from 'fastify-pool'
import type { Logger } from 'pino'
import { formatIssue, loadConfigFile, type FileIssue, type LoadedConfig } from './config-file.ts'
import type { SharedSockets } from './shared-sockets.ts'

/** What a roll needs of the primary: its workers, and how to start and stop one. */
export interface RollingWorkers<S> {
  /** The workers serving now that are not leaving. */
  serving: () => S[]
  /** Start a worker of `config`; resolves once it is ready or has failed (`ready`). */
  fork: (config: LoadedConfig, trial: true) => Promise<S & { ready: boolean }>
  /** Ask one to leave as a hand-off; resolves once it has exited. */
  leave: (slot: S) => Promise<void>
  /** True once the primary stops: the roll goes no further. */
  closing: () => boolean
  sockets: SharedSockets
  logger: Logger
  shown: string
}

export interface RollOutcome { ok: boolean, error?: string, loaded?: LoadedConfig, statusCode?: number, problems?: object[], report?: object }

/** Roll every worker to the file (or to `read`, the file as read already: a canary reload's). */
export async function rollWorkers<S> (file: string, reason: string, workers: RollingWorkers<S>, read?: LoadedConfig): Promise<RollOutcome> {
  const { logger, sockets, shown } = workers
  logger.info({ reason, workers: workers.serving().length }, `${reason}: rolling reload, one worker at a time`)
  let next: LoadedConfig
  try {
    next = read ?? await loadConfigFile(file)
  } catch (err) {
    const problems = isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err) ? err.errors.map(i => formatIssue(i, shown)) : [(err as Error).message]
    logger.error({ problems }, 'reload rejected: the file is invalid; every worker keeps the previous configuration')
    return { ok: false, error: problems.join('; ') }
  }
  // The sockets of listeners the file adds, bound before any new worker starts.
  let added: string[]
  try {
    added = await sockets.hold(next.options.servers, (message) => logger.warn({ node: process.version }, message))
  } catch (err) {
    const failures = (err as { failures?: ListenerFailure[] }).failures ?? []
    const problems = failures.map(f => `listener "${f.name}" (${f.bind}): ${f.error.message}`)
    logger.error({ problems }, 'reload failed: a new listener could not be bound; every worker keeps the previous configuration')
    return { ok: false, error: problems.join('; ') }
  }
  for (const old of workers.serving()) {
    if (workers.closing()) break
    // A worker that died during the roll was replaced from the configuration in force; it is not waited for.
    if (!workers.serving().includes(old)) continue
    const fresh = await workers.fork(next, true)
    if (!fresh.ready) {
      logger.error('a new worker could not start its pool: the roll stops; the other workers keep the previous configuration')
      // The new workers of this roll keep their own descriptors of what was added.
      sockets.drop(added)
      return { ok: false, error: 'a new worker could not start its pool' }
    }
    await workers.leave(old)
  }
  // Listeners the file dropped: their sockets close with their last worker's.
  sockets.keepOnly(next.options.servers)
  return { ok: true, loaded: next }
}
