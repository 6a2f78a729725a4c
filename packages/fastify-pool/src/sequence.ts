// Starting and stopping a pool's listeners together: a start that rolls back
// when a required listener fails, and the shutdown sequence (readiness
// delay, then drains in stopOrder groups) under one deadline.
import type { FastifyBaseLogger } from 'fastify'
import { FST_POOL_START, FST_POOL_STOP, hasIssues, listenerFailures, settle, settleAll, type ListenerFailure } from './base/errors.ts'
import type { Listener } from './listener/listener.ts'
import type { StopReport } from './config/types.ts'

/**
 * Start the listeners in parallel. If a required one fails, the ones this
 * call started are stopped again and FST_POOL_START names every failure; an
 * optional one that fails is logged.
 */
export async function startTogether (targets: Listener[], log: FastifyBaseLogger | undefined): Promise<void> {
  const { done, failed } = await settle(targets, l => l.launch(), l => l)
  let required = false
  for (const [l, failure] of failed) {
    if (!l.config.optional) required = true
    else log?.warn({ listener: l.name, bind: l.bind, err: failure.error }, 'optional listener failed to start')
  }
  if (!required) return
  // Roll back what this call started (a listener that was running already stays).
  await settle(done.filter(([, started]) => started).map(([l]) => l), l => l.stop(), l => l)
  throw listenerFailures(FST_POOL_START, failed.map(([, f]) => f))
}

/**
 * The shutdown sequence, within one deadline (`timeout`, counted from this
 * call): readiness answers 503 for `delay` ms while requests are still
 * served; then the listeners drain in groups of equal stopOrder, lowest
 * first, each group in parallel with what is left of the deadline. Every
 * listener is stopped even when one fails; the failures are thrown together.
 */
export async function stopInSequence (listeners: Listener[], timeout: number, delay: number, handOff = false): Promise<StopReport[]> {
  const began = Date.now()
  const wait = Math.min(delay, timeout)
  const held = wait > 0 ? listeners.filter(l => l.isRunning) : []
  for (const l of held) l.holdReadiness()
  try {
    if (held.length > 0) await new Promise<void>(resolve => setTimeout(resolve, wait).unref())
    const reports: Array<StopReport | undefined> = []
    const failures: ListenerFailure[] = []
    let waited = held.length > 0
    for (const group of byStopOrder(listeners)) {
      // What is left of the deadline after the delay and the groups before;
      // the first group of a stop with no delay has all of it.
      const left = waited ? Math.max(0, timeout - (Date.now() - began)) : timeout
      waited = true
      try {
        reports.push(...await settleAll(group, l => l.stop({ timeout: left, handOff }), FST_POOL_STOP))
      } catch (err) {
        if (!hasIssues<ListenerFailure>(err)) throw err
        failures.push(...err.errors)
      }
    }
    if (failures.length > 0) throw listenerFailures(FST_POOL_STOP, failures)
    return reports.filter((r): r is StopReport => r !== undefined)
  } finally {
    for (const l of held) l.releaseReadiness()
  }
}

/** Listeners in groups of equal stopOrder, lowest first. */
function byStopOrder (listeners: Listener[]): Listener[][] {
  const groups = new Map<number, Listener[]>()
  for (const l of listeners) {
    const group = groups.get(l.config.stopOrder)
    if (group === undefined) groups.set(l.config.stopOrder, [l])
    else group.push(l)
  }
  return [...groups.keys()].sort((a, b) => a - b).map(k => groups.get(k) as Listener[])
}
