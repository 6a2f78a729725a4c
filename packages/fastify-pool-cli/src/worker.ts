// A worker of `fastify-pool start --workers`: the whole pool in this
// process, on the sockets its primary holds (inherited.ts), started from
// the text of the file the primary checked. The primary owns the service:
// the signals that mean the pool (SIGHUP, SIGUSR2), the pid file, systemd,
// reloads and upgrades. A worker asks it for what spans every worker (the
// status of all, the summed metrics, a roll, an upgrade, an action on
// listeners of every worker), and does what it is told: stop, act, report.
import cluster from 'node:cluster'
import { isPoolError, type Listener } from 'fastify-pool'
import { ProcessSampler } from 'fastify-pool/control'
import { canaryEnd, controlAction, type ControlAction } from 'fastify-pool/control'
import type { Logger } from 'pino'
import { holdEarlySignals } from './early-signals.ts'
import { inheritedSockets } from './inherited.ts'
import { PoolProcess, loadFailed, type PoolProcessSettings, type StopCause } from './pool-process.ts'
import { stopOnSignals } from './shutdown.ts'
import { relayUpgrade, UpgradeError, UPGRADE_TIMEOUT, type UpgradeOptions } from './upgrade.ts'
import { askPrimary, askPrimaryForSocket, sourceFromPrimary, type ClusterMessage } from './worker-messages.ts'

/** Run the pool of this worker; resolves with 0 once it serves (and said so to the primary), else 1. */
export async function runWorker (file: string, base: Logger, settings: PoolProcessSettings): Promise<number> {
  const id = cluster.worker?.id
  // Every line says which worker wrote it.
  const logger = base.child({ worker: id })
  const early = holdEarlySignals()
  let proc: PoolProcess | undefined
  // The listener serving the control API, as the file in force names it (every worker has the same).
  const self = (): string => proc?.running.loaded.options.control?.listener ?? 'admin'
  try {
    proc = await PoolProcess.load(file, logger, settings, { ...askingThePrimary(self), ...sourceFromPrimary() })
  } catch (err) {
    early.release()
    return loadFailed(err, settings.shown, undefined)
  }
  const pool = proc
  if (early.signal !== undefined) {
    early.release()
    logger.info({ signal: early.signal }, `${early.signal} before the pool started: nothing was started`)
    // The stop asked for is done: nothing runs, nothing is bound. The IPC channel would keep this process alive: let go of it.
    cluster.worker?.disconnect()
    return 0
  }
  // A stop asked for twice (by the primary, then by a signal) is one stop: the second joins the first.
  const stop = (cause: StopCause, handOff = false): void => { pool.drainAndExit(cause, handOff).catch(() => {}) }
  stopOnSignals(logger, stop)
  early.release()
  // The primary's signals: a worker that gets one by mistake (a kill of the process group) leaves it to the primary.
  process.on('SIGHUP', () => { logger.debug('SIGHUP: the primary rolls the workers') })
  process.on('SIGUSR2', () => { logger.warn({ reason: `this process is a worker: its primary (process ${process.ppid}) upgrades the pool` }, `upgrade refused: this process is a worker: its primary (process ${process.ppid}) upgrades the pool`) })
  pool.onClose(answerThePrimary(pool, stop))
  if (await pool.start() !== undefined) return 1
  // Descriptors the primary handed on that no listener took: closed, or they would queue connections nobody accepts.
  inheritedSockets().release()
  pool.announce()
  process.send?.({ 'fastify-pool': 'ready' } satisfies ClusterMessage)
  return 0
}

/**
 * Before a start (or a restart of a stopped listener): each listener it will
 * start whose socket this worker was handed and closed with a stop gets it
 * again from the primary. A failure here is left to the start to report.
 */
async function socketsAgain (proc: PoolProcess, action: ControlAction, query: Record<string, unknown>, log: Logger): Promise<void> {
  if (action === 'stop') return
  // The selection as the control API makes it; one it will refuse (both fields, a repeated one, a bad glob) fetches nothing.
  const fields = (['name', 'bind'] as const).filter(f => query[f] !== undefined)
  const field = fields[0]
  const glob = field === undefined ? undefined : query[field]
  if (fields.length > 1 || (field !== undefined && (typeof glob !== 'string' || glob === ''))) return
  let selected: Listener[]
  try {
    selected = field === undefined ? [...proc.pool].filter(l => !l.config.disabled) : [...proc.pool.filter(field, glob as string)]
  } catch {
    return
  }
  const inherited = inheritedSockets()
  await Promise.all(selected.filter(l => !l.isRunning && inherited.spent(l.bind)).map(async (l) => {
    // Left to the start to fail; the log says why the socket did not come.
    try { inherited.sentAgain(l.bind, await askPrimaryForSocket(l.bind)) } catch (err) { log.warn({ listener: l.name, err }, 'the primary did not send this listener\'s socket again') }
  }))
}

/** A worker's pool asks the primary for what spans every worker: the status, the summed metrics, a rolling reload, an upgrade, an action. */
function askingThePrimary (self: () => string): { control: { status: () => Promise<Record<string, unknown>>, reload: (how?: { canary?: number }) => Promise<unknown>, upgrade: (o: UpgradeOptions) => Promise<Record<string, unknown>>, act: (action: ControlAction, query: Record<string, unknown>) => Promise<{ statusCode: number, body: object }> }, metricsExposition: () => Promise<string> } {
  return {
    control: {
      status: async () => {
        const answer = await askPrimary('status')
        return { workers: answer.workers, restarts: answer.restarts, primary: answer.primary }
      },
      reload: async (how?: { canary?: number }) => {
        // With a canary the primary has one worker judge it, then rolls every worker (canary-roll.ts).
        const answer = await askPrimary('roll', how?.canary === undefined ? 300_000 : 1_200_000, how?.canary === undefined ? {} : { canary: how.canary })
        if (!answer.ok) throw Object.assign(new Error(answer.error ?? 'the rolling reload failed'), answer.statusCode === undefined ? {} : { statusCode: answer.statusCode }, answer.problems === undefined ? {} : { errors: answer.problems })
        return answer.report ?? { rolled: true }
      },
      // The primary replaces itself and every worker; this worker's answer comes before its stop.
      upgrade: async (o: UpgradeOptions) => {
        const answer = await askPrimary('upgrade', (o.timeout ?? UPGRADE_TIMEOUT) + 30_000, o)
        if (answer.result === undefined) throw new UpgradeError(answer.error ?? 'the upgrade failed', answer.statusCode ?? 500)
        return { ...answer.result }
      },
      // Every worker acts (this one too, when the primary asks it), and the primary answers for all.
      act: async (action, query) => {
        const answer = await askPrimary('act', 120_000, { action, query, self: self() })
        return { statusCode: answer.statusCode, body: answer.body }
      }
    },
    metricsExposition: async () => (await askPrimary('metrics')).text
  }
}

/** A worker answers the primary: its listeners and figures when asked, an action on its listeners, a stop as SIGTERM would; it publishes the primary's upgrades. */
function answerThePrimary (proc: PoolProcess, stop: (cause: StopCause, handOff: boolean) => void): () => void {
  const figures = new ProcessSampler()
  const on = (message: ClusterMessage): void => {
    const kind = message?.['fastify-pool']
    if (kind === 'stop') stop({ reason: message.handOff === true ? 'the primary hands this worker\'s clients to the others' : 'the primary stops the pool' }, message.handOff === true)
    else if (kind === 'upgrade-event') relayUpgrade(message.event)
    else if (kind === 'listeners-request') process.send?.({ 'fastify-pool': 'listeners', id: message.id, listeners: proc.pool.status(), process: figures.read() } satisfies ClusterMessage)
    else if (kind === 'act') {
      const action = message.action
      const acting = action === 'canary promote' || action === 'canary abort'
        ? Promise.resolve(canaryEnd(proc.pool, action === 'canary promote' ? 'promote' : 'abort', message.query))
        : socketsAgain(proc, action, message.query, proc.logger).then(() => controlAction(proc.pool, action, message.query, message.self))
      acting.then(
        ({ statusCode, body }) => ({ statusCode, body }),
        (err: Error) => ({ statusCode: 500, body: { ok: false, action: message.action, results: [], error: err.message } })
      ).then((answer) => { process.send?.({ 'fastify-pool': 'acted', id: message.id, ...answer } satisfies ClusterMessage) }).catch(() => {})
    } else if (kind === 'canary-reload') {
      // The primary's canary reload: this worker reloads in place, from the text the primary read, and judges (canary-roll.ts).
      // Too few requests here to judge: aborted, not promoted (its promotion would roll unjudged code to every worker).
      proc.reload('canary reload (judged in this worker for the pool)', { canary: { share: message.canary, whenIdle: 'abort' }, ...(message.text === undefined ? {} : { text: message.text }) }).then(
        report => ({ ok: true, report }),
        (err: Error & { statusCode?: unknown, errors?: unknown }) => ({
          ok: false,
          error: err.message,
          ...(typeof err.statusCode === 'number' ? { statusCode: err.statusCode } : isPoolError(err, 'FST_POOL_VALIDATE') ? { statusCode: 422 } : {}),
          ...(Array.isArray(err.errors) ? { problems: err.errors as object[] } : {})
        })
      ).then((answer) => { process.send?.({ 'fastify-pool': 'canary-reloaded', id: message.id, ...answer } satisfies ClusterMessage) }).catch(() => {})
    }
  }
  process.on('message', on)
  return () => { process.removeListener('message', on) }
}
