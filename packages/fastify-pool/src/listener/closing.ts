// Fastify's close() in two steps. Fastify runs an instance's preClose hooks,
// then its onClose hooks; a pool wants the first at the start of a drain (a
// WebSocket plugin says goodbye to its clients, as Fastify's own close()
// lets it) and the second only after the last response and the last
// upgraded connection (a database pool closed in onClose must outlive the
// requests that use it). A plugin registered after every other one adds an
// onClose hook, which Fastify runs first of all onClose hooks (they run in
// reverse order of registration); armed, it holds the close there.
import type { FastifyInstance } from 'fastify'

/** Why a listener's instance is being closed, for its preClose hooks (`app.poolClosing`). */
export interface PoolClosing {
  /**
   * `restart`: a new generation of the listener serves in its place (a
   * restart or a reload); `handoff`: this process leaves and another one
   * serves the same port (a worker's roll); `stop`: the listener stops.
   */
  reason: 'restart' | 'handoff' | 'stop'
  /** The WebSocket close code that says so (RFC 6455 §7.4.1): 1012 service restart, or 1001 going away. */
  code: 1001 | 1012
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Set once a pool began closing this listener instance: why, and the WebSocket close code that says so. */
    poolClosing: PoolClosing | undefined
  }
}

const CODES = { restart: 1012, handoff: 1012, stop: 1001 } as const

export class TwoStepClose {
  #closing: PoolClosing | undefined
  #held: Promise<void> | undefined
  #open: (() => void) | undefined
  #reached: (() => void) | undefined
  #closed: Promise<void> | undefined
  #preClosed: Promise<void> | undefined

  /** Undefined while it serves; set once its close began. */
  get closing (): PoolClosing | undefined { return this.#closing }

  /** Add the decoration and the holding hook; call after every other plugin was registered. */
  install (app: FastifyInstance): void {
    const self = this
    if (!app.hasDecorator('poolClosing')) app.decorate('poolClosing', { getter () { return self.closing } })
    app.register(Object.assign(function holdClose (instance: FastifyInstance, _opts: unknown, done: (err?: Error) => void) {
      instance.addHook('onClose', (_i: FastifyInstance, next: (err?: Error) => void) => {
        self.#reached?.()
        if (self.#held === undefined) return next()
        self.#held.then(() => next(), next)
      })
      done()
    }, { [Symbol.for('skip-override')]: true }))
  }

  /**
   * Begin closing `app`: its preClose hooks run now, its onClose hooks once
   * finish() is called. Resolves when the preClose hooks are done. A second
   * call joins the first.
   */
  begin (app: FastifyInstance, reason: PoolClosing['reason']): Promise<void> {
    if (this.#closed !== undefined) return this.#preClosed ?? Promise.resolve()
    this.#closing = { reason, code: CODES[reason] }
    this.#held = new Promise(resolve => { this.#open = resolve })
    const reached = new Promise<void>(resolve => { this.#reached = resolve })
    this.#closed = app.close()
    // A preClose hook that fails ends the close before the hold: resolve on both.
    this.#preClosed = Promise.race([reached, this.#closed.then(noop, noop)])
    return this.#preClosed
  }

  /** Let the close go on (or run it whole if it had not begun); resolves or rejects with app.close(). */
  finish (app: FastifyInstance, reason: PoolClosing['reason']): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing = { reason, code: CODES[reason] }
      this.#closed = app.close()
    }
    this.#open?.()
    this.#open = undefined
    this.#held = undefined
    return this.#closed
  }
}

function noop (): void {}
