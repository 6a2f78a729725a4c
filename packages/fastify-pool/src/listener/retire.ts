// Retiring a generation: a restart swaps in a new one and lets the old one
// finish what it owed at the swap (up to the restart's deadline) and keep
// its upgraded connections (until they close, up to `upgradeDrainTimeout`),
// then closes its Fastify instance. A listener's retiring generations are
// kept together (Retiring), for its status and its stop.
import type { Generation } from './generation.ts'
import type { RetireReport, RetiringStatus } from '../config/types.ts'

export type { RetireReport }

/** After the goodbyes of a retirement were spread, how long its upgraded connections may take to close before they are destroyed. */
export const UPGRADE_GRACE_MS = 2000

/** How a swapped-out generation retires. */
export interface RetireLimits {
  /** Milliseconds its HTTP requests may take to finish before they are cut. */
  timeout: number
  /** Milliseconds its upgraded connections may stay open before it says goodbye. */
  upgradeTimeout: number
  /** Over how many milliseconds the goodbyes are spread. */
  closeWindow: number
}

/**
 * Let an old generation finish what it owed at the swap (up to `timeout`)
 * and keep its upgraded connections (until they close, up to
 * `upgradeTimeout`), then close its Fastify instance: its preClose hooks say
 * goodbye to the connections still upgraded, what is open after a grace is
 * destroyed, and its onClose hooks run only after its last response and its
 * last connection. Never rejects; a failed close is passed to `onCloseError`.
 */
export async function retire (gen: Generation, limits: RetireLimits, onCut: (requests: number, upgraded: number) => void, onCloseError: (err: Error) => void): Promise<RetireReport> {
  const began = Date.now()
  const [requests, upgraded] = await Promise.all([finishRequests(gen, limits.timeout), endUpgraded(gen, limits)])
  if (requests + upgraded > 0) onCut(requests, upgraded)
  // Nothing of it stays reachable from the sockets it served.
  gen.owedAt = undefined
  try {
    await gen.close('restart')
  } catch (err) {
    onCloseError(err as Error)
  }
  return { generation: gen.number, duration: Date.now() - began, cut: requests + upgraded, upgradedCut: upgraded }
}

async function finishRequests (gen: Generation, timeout: number): Promise<number> {
  if (gen.inflight === 0) return 0
  await within(gen.idle(), timeout)
  return gen.inflight > 0 ? gen.cut() : 0
}

async function endUpgraded (gen: Generation, limits: RetireLimits): Promise<number> {
  if (gen.upgrades.size === 0) return 0
  await within(gen.upgrades.idle(), limits.upgradeTimeout)
  if (gen.upgrades.size === 0) return 0
  await gen.farewell('restart', limits.closeWindow)
  await within(gen.upgrades.idle(), UPGRADE_GRACE_MS)
  const cut = gen.upgrades.destroy()
  // Their 'close' events (and the handlers' 'close' listeners) come before the onClose hooks.
  await gen.upgrades.idle()
  return cut
}

/** Resolves when `done` does, or after `ms`, whichever is first; its timer does not hold the process. */
async function within (done: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, ms); timer.unref() })
  await Promise.race([done, deadline])
  clearTimeout(timer)
}

/** The generations of one listener that a swap left finishing their requests, each with its retirement. */
export class Retiring {
  #map = new Map<Generation, Promise<RetireReport>>()
  #since = new WeakMap<Generation, number>()

  /** Retire `gen` within `limits`; its report resolves once it is closed. */
  add (gen: Generation, limits: RetireLimits, onCut: (requests: number, upgraded: number) => void, onCloseError: (err: Error) => void): Promise<RetireReport> {
    const retired = retire(gen, limits, onCut, onCloseError).finally(() => this.#map.delete(gen))
    this.#map.set(gen, retired)
    this.#since.set(gen, Date.now())
    return retired
  }

  /** What each generation retiring now still holds. */
  status (): RetiringStatus[] {
    const now = Date.now()
    return [...this.#map.keys()].map(gen => ({ generation: gen.number, inflight: gen.owedAt === undefined ? 0 : gen.inflight, upgraded: gen.upgrades.size, since: now - (this.#since.get(gen) ?? now) }))
  }

  /** The generations still retiring. */
  generations (): IterableIterator<Generation> { return this.#map.keys() }

  /** Resolves once every generation retiring now is closed. */
  async settled (): Promise<void> { await Promise.all(this.#map.values()) }
}
