// The command's lifecycle as one state machine, for a single process
// (single.ts) and for the primary of --workers (primary.ts) alike:
//
//   starting ──▶ serving ──▶ reloading ──▶ serving
//      │            │  └───▶ upgrading ──▶ serving (the successor failed)
//      └────────────┴────────────┴─────────────┴──▶ stopping (a signal, a failure, or the successor serves)
//
// Signals, the control API and --watch ask it for a transition; it refuses
// what the phase does not allow, with a reason, or (a reload asked before
// the start, or during another reload) holds it for later. It owns the
// phase and nothing else: each piece of state of the process has one owner
// (the pool, the workers, the pid file, the upgrader), and none of them
// decides on its own whether an operation may begin.

import type { CanaryOptions } from 'fastify-pool'

export type Phase = 'starting' | 'serving' | 'reloading' | 'upgrading' | 'stopping'

const NEXT: Readonly<Record<Phase, readonly Phase[]>> = {
  starting: ['serving', 'stopping'],
  serving: ['reloading', 'upgrading', 'stopping'],
  reloading: ['serving', 'stopping'],
  upgrading: ['serving', 'stopping'],
  stopping: []
}

/** An operation the phase does not allow; `statusCode` for the control API's answer. */
export class Refused extends Error {
  readonly statusCode = 409
}

export interface SupervisorOptions<R> {
  /** Re-read the file and apply it: the pool in place (one process) or a rolling reload (workers). */
  reload: (reason: string, how: ReloadHow) => Promise<R>
  log: { warn: (fields: object, message: string) => void }
}

/**
 * How a reload applies the file: with a canary (a share in percent) for
 * every changed listener; from a text read already (a worker told by its
 * primary); `onVerdict` hears a canary's verdict before what follows it (the
 * roll of every worker, canary-roll.ts).
 */
export interface ReloadHow { canary?: number | CanaryOptions, text?: string, onVerdict?: (verdict: { ok: boolean, report?: object }) => void }

interface Asked<R> { reason: string, how: ReloadHow, waiters: Array<{ resolve: (r: R) => void, reject: (e: unknown) => void }> }

export class Supervisor<R> {
  #phase: Phase = 'starting'
  /** The pid of the process this one replaces, while it still hands over (this one serves, but not alone yet). */
  #takingOver: number | undefined
  readonly #options: SupervisorOptions<R>
  /** A reload asked for while starting, or during a reload: run once the phase allows it, one for all asks. */
  #asked: Asked<R> | undefined

  constructor (options: SupervisorOptions<R>) {
    this.#options = options
  }

  get phase (): Phase { return this.#phase }
  get stopping (): boolean { return this.#phase === 'stopping' }

  /** This process serves, and the one it replaces (`pid`) hands over until `released` settles. */
  takingOver (pid: number, released: Promise<void>): void {
    this.#takingOver = pid
    released.finally(() => { if (this.#takingOver === pid) this.#takingOver = undefined }).catch(() => {})
  }

  /** Why an upgrade may not begin now, if it may not. */
  upgradeRefusal (): string | undefined {
    switch (this.#phase) {
      case 'starting': return 'the pool is still starting'
      case 'reloading': return 'a reload is under way; upgrade once it is done'
      case 'upgrading': return 'an upgrade is already under way'
      case 'stopping': return 'the pool is stopping'
    }
    if (this.#asked !== undefined) return 'a reload is under way; upgrade once it is done'
    if (this.#takingOver !== undefined) return `this process is still taking over from process ${this.#takingOver}`
    return undefined
  }

  /** starting → serving; a reload asked for meanwhile runs now. Nothing once stopping (a stop that came during the start). */
  started (): void {
    if (this.#phase === 'stopping') return
    this.#move('serving')
    this.#next()
  }

  /** serving → upgrading; throws Refused with the reason when it may not begin. */
  beginUpgrade (): void {
    const refusal = this.upgradeRefusal()
    if (refusal !== undefined) throw new Refused(refusal)
    this.#move('upgrading')
  }

  /** upgrading → serving: the successor failed, this process serves on (a stop meanwhile stays a stop). */
  upgradeFailed (): void {
    if (this.#phase === 'upgrading') this.#move('serving')
    this.#next()
  }

  /** → stopping; false if it was stopping already (a second signal). */
  stop (): boolean {
    if (this.#phase === 'stopping') return false
    this.#move('stopping')
    const asked = this.#asked
    this.#asked = undefined
    for (const w of asked?.waiters ?? []) w.reject(new Refused('the pool is stopping'))
    return true
  }

  /**
   * A reload: now if serving; after the start if starting; folded into one
   * more after the one under way (every ask since shares its outcome).
   * Refused during an upgrade (the successor reads the file afresh) and a stop.
   */
  reload (reason: string, how: ReloadHow = {}): Promise<R> {
    if (this.#phase === 'stopping' || this.#phase === 'upgrading') {
      const refusal = this.#phase === 'stopping' ? 'the pool is stopping' : 'an upgrade is under way (the new process reads the file afresh)'
      this.#options.log.warn({ reason }, `${reason}: no reload: ${refusal}`)
      return Promise.reject(new Refused(refusal))
    }
    return new Promise<R>((resolve, reject) => {
      // A canary reload is not folded into another reload asked meanwhile (nor the reverse): each verdict is its asker's.
      if (this.#asked !== undefined && (how.canary !== undefined || this.#asked.how.canary !== undefined)) {
        reject(new Refused('another reload is waiting to run; ask again once it is done'))
        return
      }
      this.#asked ??= { reason, how, waiters: [] }
      this.#asked.waiters.push({ resolve, reject })
      if (this.#phase === 'serving') this.#next()
    })
  }

  #next (): void {
    const asked = this.#asked
    if (asked === undefined || this.#phase !== 'serving') return
    this.#asked = undefined
    this.#move('reloading')
    this.#options.reload(asked.reason, asked.how).then(
      (r) => { for (const w of asked.waiters) w.resolve(r) },
      (e: unknown) => { for (const w of asked.waiters) w.reject(e) }
    ).finally(() => {
      if (this.#phase === 'reloading') this.#move('serving')
      this.#next()
    }).catch(() => {})
  }

  #move (to: Phase): void {
    if (!NEXT[this.#phase].includes(to)) throw new Error(`the command cannot go from ${this.#phase} to ${to}`)
    this.#phase = to
  }
}
