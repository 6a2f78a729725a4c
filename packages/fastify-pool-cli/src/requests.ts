// What the workers of --workers ask their primary, and how it answers: the
// status of every worker, the metrics summed over them, a rolling reload (with
// a canary: canary-roll.ts), an upgrade of every process, an action of the control API in every worker
// (one aggregate, whichever worker took the request), and a listener's
// socket again. The primary (primary.ts) says what it has through
// `PrimaryDesk`; nothing here keeps state.
import type { Worker } from 'node:cluster'
import type { ProcessFigures } from 'fastify-pool'
import { clusterMetrics } from 'fastify-pool/metrics'
import type { ControlAction, ControlActionBody, ControlResult } from 'fastify-pool/control'
import type { BoundSocket } from 'fastify-pool/sockets'
import { upgradeCounts, UpgradeError, type UpgradeOptions, type UpgradeResult } from './upgrade.ts'
import type { ReloadHow } from './supervisor.ts'
import type { ClusterMessage } from './worker-messages.ts'

/** What a reload asked through a worker is answered (no configuration object: it crosses the IPC channel). */
export interface RollAnswer { ok: boolean, error?: string, statusCode?: number, problems?: object[], report?: object }

// How long a worker may take to answer the primary's question about its status; an action's, see PrimaryDesk.actTimeout.
const ASK_MS = 2000

export interface Slot {
  worker: Worker
  /** Set once the worker said every listener is up. */
  ready: boolean
  /** The primary asked it to stop (a shutdown or a roll): its exit is expected. */
  leaving: boolean
  /** Started by a roll and not ready yet: a failure is the roll's, not a crash. */
  trial: boolean
}

/** What the primary gives the answers. */
export interface PrimaryDesk {
  slots: () => Iterable<Slot>
  /** Why an action on listeners may not run now (the workers are starting, rolling, upgrading or stopping), if it may not. */
  busy: () => string | undefined
  /** How long a worker may take to do an action: a stop drains (the drain deadline, and a margin). */
  actTimeout: () => number
  restarts: () => number
  figures: () => ProcessFigures
  /** A reload as the supervisor allows it: rolling, or with a canary judged in one worker first (canary-roll.ts), whose verdict `how.onVerdict` hears before the roll. */
  reload: (reason: string, how?: ReloadHow) => Promise<RollAnswer>
  upgrade: (options: UpgradeOptions) => Promise<UpgradeResult>
  /** The socket of a listener of the configuration in force, held anew if it has none; or why not. */
  socket: (bind: string) => Promise<BoundSocket | string>
  /** Close the sockets of these binds: every worker stopped their listener. */
  drop: (binds: string[]) => void
}

/** A worker's request to the primary, answered to that worker. */
export async function answer (desk: PrimaryDesk, from: Slot, message: ClusterMessage): Promise<void> {
  const kind = message?.['fastify-pool']
  const reply = (answer: ClusterMessage, handle?: object): void => {
    if (from.worker.isConnected()) from.worker.send(answer, handle as Parameters<Worker['send']>[1])
  }
  if (kind === 'status-request') {
    // Every worker that serves, those a roll is replacing too.
    const serving = [...desk.slots()].filter(s => s.ready && s.worker.isConnected())
    const statuses = await Promise.all(serving.map(s => askWorker(s, { 'fastify-pool': 'listeners-request', id: '' }, 'listeners')))
    reply({ 'fastify-pool': 'status-answer', id: message.id, workers: statuses.flatMap((s, i) => s === undefined ? [] : [{ id: serving[i]!.worker.id, pid: serving[i]!.worker.process.pid, listeners: s.listeners, process: s.process }]), restarts: desk.restarts(), primary: desk.figures() })
  } else if (kind === 'metrics-request') {
    const text = await clusterMetrics().catch((err: Error) => `# metrics of the workers could not be collected: ${err.message}\n`)
    reply({ 'fastify-pool': 'metrics-answer', id: message.id, text: withUpgradeCounts(text) })
  } else if (kind === 'upgrade-request') {
    const options: UpgradeOptions = { ...(message.node === undefined ? {} : { node: message.node }), ...(message.timeout === undefined ? {} : { timeout: message.timeout }) }
    const outcome = await desk.upgrade(options).then(
      result => ({ result }),
      (err: Error) => ({ error: err.message, statusCode: err instanceof UpgradeError ? err.statusCode : 500 }))
    reply({ 'fastify-pool': 'upgrade-answer', id: message.id, ...outcome })
  } else if (kind === 'roll-request') {
    // With a canary the verdict is answered as soon as it is in: the roll that follows replaces the worker that carries it.
    let answered = false
    const answerOnce = (outcome: RollAnswer): void => {
      if (answered) return
      answered = true
      reply({ 'fastify-pool': 'roll-answer', id: message.id, ...outcome })
    }
    answerOnce(await desk.reload('control API', message.canary === undefined ? {} : { canary: message.canary, onVerdict: answerOnce }))
  } else if (kind === 'act-request') {
    reply({ 'fastify-pool': 'act-answer', id: message.id, ...await act(desk, message.action, message.query, message.self) })
  } else if (kind === 'socket-request') {
    // A worker starts a listener again: its socket, as a descriptor of the worker's own.
    const socket = await desk.socket(message.bind).catch((err: Error) => err.message)
    if (typeof socket === 'string') reply({ 'fastify-pool': 'socket-answer', id: message.id, error: socket })
    else reply({ 'fastify-pool': 'socket-answer', id: message.id }, socket.handle)
  }
}

/**
 * An action of the control API (restart, stop, start) on the listeners of
 * every worker serving: one aggregate, each result naming its worker, and
 * per worker whether it did it (a worker that does not answer in time is
 * named with why). A listener that every worker stopped has its socket
 * closed too: else the port would queue connections that nobody accepts (a
 * start holds it anew: answer(), 'socket-request').
 */
async function act (desk: PrimaryDesk, action: ControlAction, query: Record<string, unknown>, self: string): Promise<{ statusCode: number, body: ControlActionBody }> {
  // While workers start, roll or leave, "every worker" is not one set: refused, with why.
  // Ending a canary is how a canary reload (a reload phase of its own) is promoted or aborted by hand: never refused for it.
  const busy = action === 'canary promote' || action === 'canary abort' ? undefined : desk.busy()
  if (busy !== undefined) return { statusCode: 409, body: { ok: false, action, results: [], error: busy } }
  const slots = [...desk.slots()].filter(s => s.ready && !s.leaving && s.worker.isConnected())
  if (action === 'restart' && query.canary !== undefined && slots.length > 1) return await canaryFirst(desk, slots, query, self)
  const answers = await Promise.all(slots.map(s => askWorker(s, { 'fastify-pool': 'act', id: '', action, query, self }, 'acted', desk.actTimeout())))
  return aggregate(action, slots, answers, desk)
}

/**
 * A restart with a canary across workers: one verdict for the pool. The
 * canary runs in the first worker, on the share of that worker's requests
 * that makes the share asked of the pool's (PCT × workers, at most 99 %),
 * so that the new code meets as many requests as asked and a bad one
 * reaches no other worker. Promoted there, the others restart plainly;
 * rolled back or aborted, they are left alone.
 */
async function canaryFirst (desk: PrimaryDesk, slots: Slot[], query: Record<string, unknown>, self: string): Promise<{ statusCode: number, body: ControlActionBody }> {
  const [first, ...rest] = slots as [Slot, ...Slot[]]
  const share = Math.min(99, Number(query.canary) * slots.length)
  const judged = await askWorker(first, { 'fastify-pool': 'act', id: '', action: 'restart', query: { ...query, canary: String(share) }, self }, 'acted', desk.actTimeout() + 600_000)
  const results = (judged?.body as Partial<ControlActionBody> | undefined)?.results ?? []
  const promoted = judged !== undefined && judged.statusCode === 200 && results.length > 0 && results.every(r => r.canary === undefined || r.canary.result === 'promoted')
  const plain = Object.fromEntries(Object.entries(query).filter(([k]) => k !== 'canary'))
  const others = promoted ? await Promise.all(rest.map(s => askWorker(s, { 'fastify-pool': 'act', id: '', action: 'restart', query: plain, self }, 'acted', desk.actTimeout()))) : []
  return aggregate('restart', promoted ? slots : [first], [judged, ...others], desk)
}

/** Every worker's answer to one action, as one. */
function aggregate (action: ControlAction, slots: Slot[], answers: Array<Extract<ClusterMessage, { 'fastify-pool': 'acted' }> | undefined>, desk: PrimaryDesk): { statusCode: number, body: ControlActionBody } {
  const workers: NonNullable<ControlActionBody['workers']> = []
  const results: ControlResult[] = []
  const codes: number[] = []
  for (const [i, slot] of slots.entries()) {
    const answered = answers[i]
    const id = slot.worker.id
    const pid = slot.worker.process.pid
    if (answered === undefined) {
      workers.push({ id, pid, ok: false, error: slot.worker.isDead() ? 'the worker exited before it answered' : 'the worker did not answer in time' })
      codes.push(504)
      continue
    }
    const body = answered.body as Partial<ControlActionBody>
    codes.push(answered.statusCode)
    workers.push({ id, pid, ok: body.ok === true, ...(body.error === undefined ? {} : { error: body.error }) })
    for (const r of body.results ?? []) results.push({ ...r, worker: id })
  }
  if (action === 'stop') {
    // Only a listener that every worker says it stopped: one that did not answer, or failed, may still serve the port.
    const stoppedEverywhere = (bind: string): boolean => slots.every(slot => results.some(r => r.worker === slot.worker.id && r.bind === bind && r.ok && r.state === 'stopped'))
    desk.drop([...new Set(results.map(r => r.bind))].filter(stoppedEverywhere))
  }
  if (action === 'canary promote' || action === 'canary abort') {
    // The canary runs in one worker (canaryFirst()): the others have none to end.
    const ended = workers.filter((_w, i) => codes[i] === 200)
    if (ended.length > 0) return { statusCode: 200, body: { ok: true, action, results: results.filter(r => r.ok), workers: ended } }
  }
  // Every worker has the same listeners: a selection that matches nothing, a bad glob or a refusal is the same in each.
  const same = codes.length > 0 && codes.every(c => c === codes[0]) ? codes[0] as number : undefined
  const ok = workers.length > 0 && workers.every(w => w.ok)
  const refused = same !== undefined && same !== 200 && same !== 500 ? answers[0]?.body as Partial<ControlActionBody> | undefined : undefined
  const error = refused?.error ?? (workers.length === 0 ? 'no worker serves' : undefined)
  return { statusCode: same ?? (ok ? 200 : 500), body: { ok, action, results, workers, ...(error === undefined ? {} : { error }) } }
}

/** Ask one worker (bounded: a busy worker is left out); its answer, or undefined. */
export function askWorker<K extends 'listeners' | 'acted' | 'canary-reloaded'> (slot: Slot, question: ClusterMessage, answerKind: K, ms = ASK_MS): Promise<Extract<ClusterMessage, { 'fastify-pool': K }> | undefined> {
  return new Promise(resolve => {
    const id = Math.random().toString(36).slice(2)
    const done = (answer: Extract<ClusterMessage, { 'fastify-pool': K }> | undefined): void => {
      clearTimeout(timer)
      slot.worker.removeListener('message', on)
      slot.worker.removeListener('exit', gone)
      resolve(answer)
    }
    // A worker that exits meanwhile answers nothing: no need to wait for the timeout.
    const gone = (): void => done(undefined)
    const timer = setTimeout(gone, ms)
    timer.unref()
    const on = (m: ClusterMessage): void => {
      if (m?.['fastify-pool'] === answerKind && (m as { id?: string }).id === id) done(m as Extract<ClusterMessage, { 'fastify-pool': K }>)
    }
    slot.worker.on('message', on)
    slot.worker.once('exit', gone)
    slot.worker.send({ ...question, id })
  })
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
