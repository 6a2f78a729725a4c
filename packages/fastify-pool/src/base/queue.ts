// One listener's lifecycle calls, run one after another in call order, so
// that any mix of start/stop/restart ends in the state of the last call. A
// call that repeats the last one queued may join it instead of queueing again.

/**
 * When a call may join the same call already queued: `always` (start and stop
 * are idempotent), `unstarted` (a restart that has not begun building yet
 * would build the same thing; one that has begun may have read old handlers),
 * `never` (calls with arguments).
 */
export type Share = 'always' | 'unstarted' | 'never'

interface Entry { op: string, promise: Promise<unknown>, started: boolean }

export class CallQueue {
  #tail: Promise<unknown> = Promise.resolve()
  #pending: Entry | undefined

  /**
   * Queue `run`. `then` runs once the call has left the queue: a restart lets
   * the next call in as soon as the new generation serves, and what `then`
   * does (its report) is not waited for by the calls behind it.
   */
  add<T> (op: string, share: Share, run: () => Promise<T>): Promise<T>
  add<T, R> (op: string, share: Share, run: () => Promise<T>, then: (value: T) => Promise<R> | R): Promise<R>
  add<T, R> (op: string, share: Share, run: () => Promise<T>, then?: (value: T) => Promise<R> | R): Promise<T | R> {
    const last = this.#pending
    if (last !== undefined && last.op === op && (share === 'always' || (share === 'unstarted' && !last.started))) {
      // The same op: the same kind of result.
      return last.promise as Promise<T | R>
    }
    const entry: Entry = { op, promise: Promise.resolve(), started: false }
    const queued = this.#tail.then(() => { entry.started = true; return run() })
    const promise: Promise<T | R> = then === undefined ? queued : queued.then(then)
    entry.promise = promise
    this.#pending = entry
    this.#tail = queued.then(() => {}, () => {}).finally(() => { if (this.#pending === entry) this.#pending = undefined })
    return promise
  }
}
