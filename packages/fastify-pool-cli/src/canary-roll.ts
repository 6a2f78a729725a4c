// `fastify-pool reload --canary PCT` with --workers: one verdict for the pool,
// as a restart's canary (requests.ts, canaryFirst()). It runs as the
// supervisor's reload (supervisor.ts), so no other reload, upgrade or stop
// begins meanwhile:
//
// 1. The primary reads the file once. A file that adds, removes or moves a
//    listener is refused: a worker serves only the sockets its primary
//    holds, and a listener added in one worker alone would serve from it.
// 2. The first worker reloads in place from that text, its changed
//    listeners judged on PCT × workers % of its requests.
// 3. Promoted (every changed listener): the asker hears the verdict at once,
//    then every worker is replaced by a rolling reload of the same text (the
//    judged one too, so that all run one configuration in fresh processes).
//    The roll replaces the worker that carries the answer: hence first.
// 4. Not promoted: no other worker is touched. If the first worker kept a
//    change (a listener of the file promoted beside one rolled back, or a
//    stopped one changed), it is replaced from the configuration in force,
//    so that every worker serves one configuration.
// The judging worker's canary is aborted, not promoted, when neither of its
// generations had enough requests to judge (`whenIdle: 'abort'`): the
// kernel's share of connections may give it few while the others serve
// plenty, and a promotion there would roll unjudged code to every worker.
import { hasIssues, isPoolError } from 'fastify-pool'
import type { Logger } from 'pino'
import { formatIssue, loadConfigFile, type FileIssue, type LoadedConfig } from './config-file.ts'
import { askWorker, type Slot } from './requests.ts'
import type { RollOutcome } from './roll.ts'
import type { ReloadHow } from './supervisor.ts'

/** What the canary roll needs of the primary. */
export interface CanaryRollDesk {
  /** The configuration in force. */
  loaded: () => LoadedConfig
  /** The workers that serve and are not leaving. */
  serving: () => Slot[]
  /** Roll every worker to `next` (rollWorkers with a configuration read already). */
  roll: (reason: string, next: LoadedConfig) => Promise<RollOutcome>
  /** Replace one worker by a new one of the configuration in force; false if the new one could not start. */
  replace: (slot: Slot) => Promise<boolean>
  /** How long the judging worker may take: the drain deadline and the canary's windows. */
  judgeMs: number
  logger: Logger
  shown: string
}

interface JudgedReport { changed?: string[], canary?: Record<string, { result: string }> }

export async function canaryRoll (desk: CanaryRollDesk, reason: string, how: ReloadHow & { canary: NonNullable<ReloadHow['canary']> }): Promise<RollOutcome> {
  const { logger } = desk
  let next: LoadedConfig
  try {
    next = await loadConfigFile(desk.loaded().file)
  } catch (err) {
    const issues = isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err) ? err.errors : undefined
    const problems = issues?.map(i => formatIssue(i, desk.shown)) ?? [(err as Error).message]
    logger.error({ problems }, 'reload rejected: the file is invalid; every worker keeps the previous configuration')
    return { ok: false, statusCode: 422, error: `the file is invalid: ${problems.join('; ')}`, ...(issues === undefined ? {} : { problems: issues }) }
  }
  const moved = changedListeners(desk.loaded(), next)
  if (moved.length > 0) {
    return { ok: false, statusCode: 409, error: `with --workers a canary reload changes existing listeners only (every worker serves the sockets its primary holds), and this file adds, removes or moves ${moved.join(', ')}: reload without --canary` }
  }
  const first = desk.serving().find(s => s.ready && s.worker.isConnected())
  if (first === undefined) return { ok: false, statusCode: 409, error: 'no worker serves' }
  const workers = desk.serving().length
  const share = Math.min(99, (typeof how.canary === 'number' ? how.canary : how.canary.share ?? 10) * workers)
  const judge = first.worker.id
  logger.info({ reason, canary: how.canary, worker: judge, share }, `${reason}: canary reload, judged in worker ${judge} on ${share} % of its requests`)
  const judged = await askWorker(first, { 'fastify-pool': 'canary-reload', id: '', canary: share, ...(next.text === undefined ? {} : { text: next.text }) }, 'canary-reloaded', desk.judgeMs)
  if (judged === undefined) return { ok: false, error: first.worker.isDead() ? 'the worker judging the canary exited' : 'the worker judging the canary did not answer in time' }
  if (!judged.ok) return { ok: false, error: judged.error ?? 'the canary reload failed', ...(judged.statusCode === undefined ? {} : { statusCode: judged.statusCode }), ...(judged.problems === undefined ? {} : { problems: judged.problems }) }

  const report = (judged.report ?? {}) as JudgedReport & object
  const verdicts = Object.values(report.canary ?? {})
  const lost = new Set(Object.entries(report.canary ?? {}).filter(([, c]) => c.result !== 'promoted').map(([name]) => name))
  // Changes the judging worker kept: promoted ones, and those no canary judged (a stopped listener).
  const kept = (report.changed ?? []).filter(name => !lost.has(name))
  if (verdicts.every(c => c.result === 'promoted') && kept.length > 0) {
    how.onVerdict?.({ ok: true, report: { ...report, workers: { judged: judge, rolling: true } } })
    const rolled = await desk.roll('canary promoted', next)
    return { ...rolled, report: { ...report, workers: { judged: judge, rolling: true, rolled: rolled.ok } } }
  }
  // Nothing changed, or a canary lost: no roll. A change the judge kept beside a lost one is undone by replacing it.
  const replaced = kept.length > 0 && verdicts.some(c => c.result !== 'promoted') ? await desk.replace(first) : undefined
  if (replaced === false) logger.error({ worker: judge }, 'a worker that kept part of a canary reload could not be replaced: it serves a configuration of its own until its next replacement')
  return { ok: true, report: { ...report, workers: { judged: judge, rolling: false, ...(replaced === undefined ? {} : { replaced }) } } }
}

/** Listeners that `next` adds, removes or gives another address (by name). */
function changedListeners (loaded: LoadedConfig, next: LoadedConfig): string[] {
  const binds = (c: LoadedConfig): Map<string, string> => new Map(c.options.servers.map(s => [s.name, s.bind]))
  const before = binds(loaded)
  const after = binds(next)
  return [...new Set([...before.keys(), ...after.keys()])].filter(name => before.get(name) !== after.get(name))
}
