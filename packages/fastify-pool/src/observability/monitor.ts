// The health of a pool's listeners: the ok/warn/ko status each check (see
// check.ts) moves, reports, and optional periodic checks that smooth the
// status with rise and fall counts, as HAProxy's health checks do.
import { notRunning, probe, type CheckResult } from './check.ts'
import { FST_POOL_MONITOR, listenerFailures, validationError, type ListenerFailure, type ValidationIssue } from '../base/errors.ts'
import type { Listener } from '../listener/listener.ts'
import type { ListenerState } from '../config/types.ts'
import { AutoRestart, autoRestartSettings, type AutoRestartOptions, type AutoRestartStatus } from './auto-restart.ts'
import { defaultsOf, MonitorCallSchema, optionIssues, PeriodicMonitorSchema, VersionArgumentSchema, withDefaults } from '../config/options.ts'

export type MonitorStatus = 'ok' | 'warn' | 'ko'

/** What the application says about itself; copied into every report. */
export interface VersionInfo {
  name?: string
  release?: string
  build?: string
  date?: string
  [key: string]: string | number | boolean | undefined
}

/** One check in a listener's history. */
export interface MonitorHistoryEntry {
  /** ISO time of the check. */
  at: string
  /** Whether the check passed. */
  ok: boolean
  /** The listener's status after this check. */
  status: MonitorStatus
  /** Milliseconds the request took; undefined when no request was made. */
  latency: number | undefined
  /** Why the check failed; undefined when it passed. */
  message: string | undefined
}

/** The health of one listener. */
export interface MonitorReport {
  /** Listener name. */
  name: string
  /** Stable, unique monitor name: `fastify-pool:<listener name>`. */
  monitor: string
  bind: string
  expose: string | undefined
  handler: string
  /** The listener's lifecycle state when the report was made. */
  state: ListenerState
  status: MonitorStatus
  /** Milliseconds the last check's request took; undefined when it made none. */
  latency: number | undefined
  /** Milliseconds since the listener started listening; 0 when not running. */
  uptime: number
  /** Why the last check failed; undefined when it passed. */
  message: string | undefined
  /** The most recent failed check, kept after recovery. */
  lastError: { message: string, at: string } | undefined
  /** ISO time of the last check. */
  checkedAt: string | undefined
  /** Consecutive passed checks. */
  rise: number
  /** Consecutive failed checks. */
  fall: number
  /** The last checks, oldest first (bounded). */
  history: MonitorHistoryEntry[]
  /** The version info given to monitor(). */
  version: VersionInfo | undefined
  /** The runtime serving the listener, e.g. `node v20.19.0`. */
  runtime: string
  /** Health-driven restarts, when the periodic monitor has them on. */
  autoRestart?: AutoRestartStatus
}

export interface MonitorOptions {
  /** Check every listener now. Default: true, unless periodic checks run (then their last result is reported). */
  fresh?: boolean
  /** Milliseconds a check may take (default: the periodic timeout, else 2000). */
  timeout?: number
  /** Throw FST_POOL_MONITOR when an enabled listener is `ko` (default false). */
  strict?: boolean
}

export interface PeriodicMonitorOptions {
  /** Milliseconds between two rounds of checks (default 5000). */
  interval?: number
  /** Milliseconds a check may take (default 2000). */
  timeout?: number
  /** Consecutive passed checks that make a listener `ok` (default 2). */
  rise?: number
  /** Consecutive failed checks that make a listener `ko` (default 3). */
  fall?: number
  /** Checks kept per listener (default 10). */
  history?: number
  /** Called after a listener's status changed. */
  onChange?: (report: MonitorReport, previous: MonitorStatus | undefined) => void
  /** Restart a listener whose checks keep failing (off by default); true for the defaults. See auto-restart.ts. */
  autoRestart?: boolean | AutoRestartOptions
}

/** A monitor error: FST_POOL_MONITOR with one entry per failed listener, and every report. */
export type MonitorError = Error & { errors: ListenerFailure[], reports: MonitorReport[] }

/** The periodic monitor's defaults, as its options schema declares them (options.ts). */
export const MONITOR_DEFAULTS = defaultsOf(PeriodicMonitorSchema) as Readonly<{ interval: number, timeout: number, rise: number, fall: number, history: number }>

const RUNTIME = `node ${process.version}`

/** The stable monitor name of a listener: unique in its pool, since listener names are. */
export function monitorName (listener: Listener): string {
  return `fastify-pool:${listener.name}`
}

interface State {
  status: MonitorStatus | undefined
  good: number
  bad: number
  last: CheckResult | undefined
  lastError: CheckResult | undefined
  history: MonitorHistoryEntry[]
}

type Settings = Required<Omit<PeriodicMonitorOptions, 'onChange' | 'autoRestart'>> & Pick<PeriodicMonitorOptions, 'onChange'>

/** The checks, counters and periodic timer of one pool. */
export class PoolMonitor {
  #listeners: () => Listener[]
  #states = new WeakMap<Listener, State>()
  #settings: Settings = { ...MONITOR_DEFAULTS }
  #timer: NodeJS.Timeout | undefined
  #restarts: AutoRestart | undefined
  // Aborts the checks of the periodic loop in flight when it stops.
  #loop: AbortController | undefined

  constructor (listeners: () => Listener[]) {
    this.#listeners = listeners
  }

  /** True while periodic checks run. */
  get periodic (): boolean { return this.#loop !== undefined }

  /** One report per listener; see MonitorOptions for when it checks. */
  async reports (version: VersionInfo | undefined, options: MonitorOptions = {}): Promise<MonitorReport[]> {
    const issues = checkMonitorArguments(version, options, 'options')
    if (issues.length > 0) throw validationError(issues)
    const listeners = this.#listeners()
    const fresh = options.fresh ?? !this.periodic
    // A listener never checked yet (new, or the first periodic round is not
    // over) is checked now rather than reported as unknown.
    const due = fresh ? listeners : listeners.filter(l => this.#state(l).status === undefined)
    // Outside a periodic loop a check stands alone: rise = fall = 1.
    const counts = this.periodic ? this.#settings : { rise: 1, fall: 1 }
    const timeout = options.timeout ?? this.#settings.timeout
    await Promise.all(due.map(l => this.#check(l, timeout, counts.rise, counts.fall, undefined)))
    const reports = listeners.map(l => this.#report(l, version))
    if (options.strict === true) {
      const failed = listeners.filter((l, i) => !l.config.disabled && reports[i]?.status === 'ko')
      if (failed.length > 0) {
        const failures = failed.map(l => ({ name: l.name, bind: l.bind, error: new Error(this.#state(l).last?.message ?? 'not checked') }))
        const error: MonitorError = Object.assign(listenerFailures(FST_POOL_MONITOR, failures), { reports })
        throw error
      }
    }
    return reports
  }

  /** Start periodic checks (restarting them with the new options if they run). Resolves after the first round. */
  start (options: PeriodicMonitorOptions = {}): Promise<void> {
    const issues = checkPeriodicOptions(options, 'options')
    if (issues.length > 0) throw validationError(issues)
    this.stop()
    const settings = withDefaults(PeriodicMonitorSchema, options) as Settings
    this.#settings = settings
    const restarts = autoRestartSettings(options.autoRestart)
    this.#restarts = restarts === undefined ? undefined : new AutoRestart(restarts)
    const loop = new AbortController()
    this.#loop = loop
    const round = async (): Promise<void> => {
      await Promise.all(this.#listeners().map(l => this.#check(l, settings.timeout, settings.rise, settings.fall, loop.signal)))
      if (loop.signal.aborted) return
      // The next round is planned when this one ends, so slow checks never pile up.
      this.#timer = setTimeout(() => { round().catch(() => {}) }, settings.interval)
      this.#timer.unref()
    }
    return round()
  }

  /** Stop periodic checks: clears the timer and aborts the checks in flight. */
  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#loop?.abort()
    this.#loop = undefined
    this.#restarts = undefined
  }

  #state (listener: Listener): State {
    let state = this.#states.get(listener)
    if (state === undefined) {
      state = { status: undefined, good: 0, bad: 0, last: undefined, lastError: undefined, history: [] }
      this.#states.set(listener, state)
    }
    return state
  }

  async #check (listener: Listener, timeout: number, rise: number, fall: number, signal: AbortSignal | undefined): Promise<void> {
    const result = await probe(listener, timeout, signal)
    // A check cut short by stop() says nothing about the listener.
    if (signal?.aborted === true) return
    this.#record(listener, result, rise, fall)
  }

  #record (listener: Listener, result: CheckResult, rise = 1, fall = 1): void {
    const s = this.#state(listener)
    const before = s.status
    if (result.ok) { s.good++; s.bad = 0 } else { s.bad++; s.good = 0 }
    // With no history the first check decides; afterwards a listener is ok
    // after `rise` passed checks in a row, ko after `fall` failed ones, and
    // warn in between.
    if (before === undefined || result.down === true) s.status = result.ok ? 'ok' : 'ko'
    else if (result.ok) s.status = s.good >= rise ? 'ok' : 'warn'
    else s.status = s.bad >= fall ? 'ko' : 'warn'
    s.last = result
    if (!result.ok) s.lastError = result
    s.history.push({ at: new Date(result.at).toISOString(), ok: result.ok, status: s.status, latency: result.latency, message: result.message })
    const keep = this.#settings.history
    if (s.history.length > keep) s.history.splice(0, s.history.length - keep)
    // Periodic checks only (one asked for by monitor() restarts nothing); a
    // restart makes the failures count afresh, towards the next attempt.
    if (this.periodic && this.#restarts?.afterCheck(listener, result.ok, s.bad, listener.logger) === true) s.bad = 0
    if (s.status === before) return
    const log = listener.logger
    if (s.status === 'ok') log?.info({ status: s.status, previous: before }, 'health check passed')
    else log?.warn({ status: s.status, previous: before, reason: result.message }, 'health check failed')
    const onChange = this.#settings.onChange
    if (onChange !== undefined && this.periodic) {
      try {
        onChange(this.#report(listener, undefined), before)
      } catch (err) {
        log?.error({ err }, 'monitor onChange callback threw')
      }
    }
  }

  #report (listener: Listener, version: VersionInfo | undefined): MonitorReport {
    const s = this.#state(listener)
    // A listener that is not running is ko now, whatever its last check said.
    if (!listener.isRunning && s.status !== 'ko') this.#record(listener, notRunning(listener))
    const last = s.last
    return {
      name: listener.name,
      monitor: monitorName(listener),
      bind: listener.bind,
      expose: listener.expose,
      handler: listener.handlerKey,
      state: listener.state,
      status: s.status ?? 'ko',
      latency: last?.latency,
      uptime: listener.uptime,
      message: last?.message,
      lastError: s.lastError === undefined ? undefined : { message: s.lastError.message ?? '', at: new Date(s.lastError.at).toISOString() },
      checkedAt: last === undefined ? undefined : new Date(last.at).toISOString(),
      rise: s.good,
      fall: s.bad,
      history: s.history.map(h => ({ ...h })),
      version: version === undefined ? undefined : { ...version },
      runtime: RUNTIME,
      ...(this.#restarts === undefined ? {} : { autoRestart: this.#restarts.status(listener) })
    }
  }
}

/** Check the arguments of monitor() without checking anything; option paths start with `at`. */
export function checkMonitorArguments (version: unknown, options: unknown, at: string): ValidationIssue[] {
  const issues = optionIssues(VersionArgumentSchema, { version }, '')
  return [...issues, ...optionIssues(MonitorCallSchema, options, at)]
}

/** Every problem of a `monitor` option (true, false or periodic options), at the path `monitor`. */
export function monitorIssues (option: unknown): ValidationIssue[] {
  return option === undefined || typeof option === 'boolean' ? [] : checkPeriodicOptions(option, 'monitor')
}

/** Check periodic monitor options without starting anything; paths start with `at`. */
export function checkPeriodicOptions (options: unknown, at: string): ValidationIssue[] {
  return optionIssues(PeriodicMonitorSchema, options, at)
}
