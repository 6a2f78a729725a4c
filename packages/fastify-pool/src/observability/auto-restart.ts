// Health-driven restart, on the periodic monitor: a listener whose checks
// fail `after` times in a row gets a new generation (a failed one is started
// again), with an exponential backoff between attempts; after `max`
// attempts within `window` it is left alone, and its report says so, until
// it passes a check again.
import type { FastifyBaseLogger } from 'fastify'
import type { Listener } from '../listener/listener.ts'
import { AutoRestartSchema, defaultsOf } from '../config/options.ts'

export interface AutoRestartOptions {
  /** Consecutive failed checks that trigger a restart (default 3). */
  after?: number
  /** Milliseconds between two attempts: `min` doubled at each one, at most `max` (default 1000 and 60000). */
  backoff?: { min?: number, max?: number }
  /** Attempts allowed within `window` before giving up (default 5). */
  max?: number
  /** Milliseconds over which attempts are counted (default 600000). */
  window?: number
}

export interface AutoRestartSettings { after: number, min: number, maxDelay: number, max: number, window: number }

/** What a monitor report says of auto-restart, when it is on. */
export interface AutoRestartStatus {
  /** Attempts within the window. */
  attempts: number
  /** True once `max` attempts within the window did not help: no more are made until a check passes. */
  gaveUp: boolean
  /** ISO time before which no attempt is made (backoff). */
  nextAttemptAt: string | undefined
}

const backoff = defaultsOf(AutoRestartSchema.properties.backoff)
/** The defaults of AutoRestartSchema (options.ts), by setting. */
export const AUTO_RESTART_DEFAULTS = Object.freeze({ ...defaultsOf(AutoRestartSchema), min: backoff.min, maxDelay: backoff.max }) as Readonly<AutoRestartSettings>

export function autoRestartSettings (option: boolean | AutoRestartOptions | undefined): AutoRestartSettings | undefined {
  if (option === undefined || option === false) return undefined
  const o = option === true ? {} : option
  return {
    after: o.after ?? AUTO_RESTART_DEFAULTS.after,
    min: o.backoff?.min ?? AUTO_RESTART_DEFAULTS.min,
    maxDelay: o.backoff?.max ?? AUTO_RESTART_DEFAULTS.maxDelay,
    max: o.max ?? AUTO_RESTART_DEFAULTS.max,
    window: o.window ?? AUTO_RESTART_DEFAULTS.window
  }
}

interface Track { attempts: number[], gaveUp: boolean, nextAllowed: number, busy: boolean }

/** The auto-restart bookkeeping of one pool's monitor. */
export class AutoRestart {
  readonly settings: AutoRestartSettings
  #tracks = new WeakMap<Listener, Track>()

  constructor (settings: AutoRestartSettings) {
    this.settings = settings
  }

  /**
   * After a check: restart the listener when it has failed `after` times in
   * a row and the backoff allows; returns true when it did, so the caller
   * counts failures afresh.
   */
  afterCheck (listener: Listener, ok: boolean, failures: number, log: FastifyBaseLogger | undefined): boolean {
    const track = this.#track(listener)
    if (ok) {
      if (track.gaveUp) log?.info('auto-restart: the listener passes its checks again')
      track.gaveUp = false
      return false
    }
    // Only what broke by itself: a listener stopped on purpose, disabled, or
    // holding its readiness for a shutdown is left as it is.
    const state = listener.state
    if ((state !== 'running' && state !== 'failed') || listener.config.disabled || listener.readinessHeld) return false
    if (track.busy || track.gaveUp || failures < this.settings.after) return false
    const now = Date.now()
    if (now < track.nextAllowed) return false
    track.attempts = track.attempts.filter(at => now - at < this.settings.window)
    if (track.attempts.length >= this.settings.max) {
      track.gaveUp = true
      log?.error({ attempts: track.attempts.length, window: this.settings.window }, `auto-restart gave up: ${track.attempts.length} restarts within ${this.settings.window} ms did not make the listener healthy; restart it by hand`)
      return false
    }
    track.attempts.push(now)
    const delay = Math.min(this.settings.maxDelay, this.settings.min * 2 ** (track.attempts.length - 1))
    track.nextAllowed = now + delay
    track.busy = true
    log?.warn({ failures, attempt: track.attempts.length, nextAttemptIn: delay }, `auto-restart: ${failures} failed checks in a row; restarting the listener`)
    listener.restart().then(
      (report) => log?.info({ generation: report.generation }, 'auto-restart: new generation serving'),
      (err: unknown) => log?.error({ err }, 'auto-restart: the restart failed')
    ).finally(() => { track.busy = false })
    return true
  }

  status (listener: Listener): AutoRestartStatus {
    const track = this.#track(listener)
    const now = Date.now()
    return {
      attempts: track.attempts.filter(at => now - at < this.settings.window).length,
      gaveUp: track.gaveUp,
      nextAttemptAt: track.nextAllowed > now ? new Date(track.nextAllowed).toISOString() : undefined
    }
  }

  #track (listener: Listener): Track {
    let track = this.#tracks.get(listener)
    if (track === undefined) {
      track = { attempts: [], gaveUp: false, nextAllowed: 0, busy: false }
      this.#tracks.set(listener, track)
    }
    return track
  }
}
