// A canary: a new generation serving a share of a listener's requests beside
// the serving one, both counted over the same time, and a judge that
// promotes it (in steps) once its windows passed cleanly, or rolls it back
// as soon as it answers clearly worse: a higher 5xx share, or a slower p99.
// While none runs, nothing of this is on the request path.
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { CanaryFigures, CanaryOptions, CanaryReport, CanaryStatus } from '../config/types.ts'
import type { Generation, Request, RequestHandler, Response } from './generation.ts'

/** The canary's settings with their defaults (docs/canary.md). */
export const CANARY_DEFAULTS = Object.freeze({
  share: 10,
  steps: Object.freeze([]) as readonly number[],
  window: 20_000,
  minRequests: 20,
  maxErrorRate: 0.05,
  maxLatencyRatio: 3,
  latencyFloor: 10,
  whenIdle: 'promote'
} as const)

export interface CanarySettings {
  share: number
  steps: readonly number[]
  window: number
  minRequests: number
  maxErrorRate: number
  maxLatencyRatio: number
  latencyFloor: number
  sticky: { header: string } | { cookie: string } | undefined
  whenIdle: 'promote' | 'abort'
}

export function canarySettings (options: CanaryOptions | number | true): CanarySettings {
  const given = typeof options === 'number' ? { share: options } : options === true ? {} : options
  return {
    share: given.share ?? CANARY_DEFAULTS.share,
    steps: given.steps ?? CANARY_DEFAULTS.steps,
    window: given.window ?? CANARY_DEFAULTS.window,
    minRequests: given.minRequests ?? CANARY_DEFAULTS.minRequests,
    maxErrorRate: given.maxErrorRate ?? CANARY_DEFAULTS.maxErrorRate,
    maxLatencyRatio: given.maxLatencyRatio ?? CANARY_DEFAULTS.maxLatencyRatio,
    latencyFloor: given.latencyFloor ?? CANARY_DEFAULTS.latencyFloor,
    sticky: given.sticky,
    whenIdle: given.whenIdle ?? CANARY_DEFAULTS.whenIdle
  }
}

/** Most response times kept per generation for its p99 (the newest). */
const KEEP = 4096
/** A new instance's first responses are slower (its routes and serializers are compiled then): they count, but not in its p99. */
const WARM_UP = 20
/** Fewer response times than this make no p99 (it would be the slowest one). */
const P99_SAMPLES = 100
/** How often the judge looks while a step runs. */
const JUDGE_MS = 250
/** Looks in a row that must find the canary too slow before it is rolled back on latency (a second). */
const SLOW_TURNS = 4

/** What one generation answered since the canary began. */
class Tally {
  requests = 0
  errors = 0
  #times: number[] = []
  #next = 0

  add (status: number, ms: number): void {
    this.requests++
    if (status >= 500) this.errors++
    if (this.requests <= WARM_UP) return
    if (this.#times.length < KEEP) this.#times.push(ms)
    else { this.#times[this.#next] = ms; this.#next = (this.#next + 1) % KEEP }
  }

  get errorRate (): number { return this.requests === 0 ? 0 : this.errors / this.requests }

  /** Response times kept for the p99 (after the warm-up). */
  get samples (): number { return this.#times.length }

  p99 (): number | null {
    if (this.#times.length === 0) return null
    const sorted = [...this.#times].sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] as number
  }

  figures (generation: number): CanaryFigures {
    const p99 = this.p99()
    return { generation, requests: this.requests, errors: this.errors, errorRate: this.requests === 0 ? null : this.errorRate, p99: p99 === null ? null : Math.round(p99 * 10) / 10 }
  }
}

const kLastGeneration = Symbol('fastify-pool.canary.lastGeneration')
type MarkedSocket = Socket & { [kLastGeneration]?: Generation }

/** The generation that served a socket's last request while a canary ran (for the seal of the one that loses). */
export function lastServedBy (socket: Socket): Generation | undefined {
  return (socket as MarkedSocket)[kLastGeneration]
}

/** FNV-1a of the sticky key, to 0..99. */
function bucket (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % 100
}

function cookie (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

export type Verdict = { result: 'promoted', idle?: true } | { result: 'rolled-back', criterion: 'errors' | 'latency', reason: string } | { result: 'aborted', reason: string }

/**
 * One canary of one listener: the split dispatch (put on the server's
 * 'request' event in place of the serving generation's), the tallies, and
 * the judge. `verdict` resolves once; the listener then promotes or rolls
 * back (serving.ts) and builds the report.
 */
export class Canary {
  readonly serving: Generation
  readonly next: Generation
  readonly settings: CanarySettings
  readonly startedAt = Date.now()
  readonly dispatch: RequestHandler
  /** Whether the canary takes this request (a handshake, for the upgrade router): the split's choice. */
  readonly pick: (req: Request) => boolean
  readonly verdict: Promise<Verdict>
  #share: number
  #step = 0
  #stepStarted = Date.now()
  #servingTally = new Tally()
  #nextTally = new Tally()
  #timer: NodeJS.Timeout | undefined
  #decide!: (verdict: Verdict) => void
  #decided: Verdict | undefined
  /** Judgements in a row that found the canary too slow: a pause (a GC, a busy neighbour) is one, a slow canary stays. */
  #slow = 0

  constructor (serving: Generation, next: Generation, settings: CanarySettings) {
    this.serving = serving
    this.next = next
    this.settings = settings
    this.#share = settings.share
    this.verdict = new Promise(resolve => { this.#decide = resolve })
    const pick = this.#picker()
    this.pick = pick
    this.dispatch = (req, res) => {
      const gen = pick(req) ? next : serving
      const socket = req.socket as MarkedSocket
      if (socket !== null && socket !== undefined) socket[kLastGeneration] = gen
      const tally = gen === next ? this.#nextTally : this.#servingTally
      const began = performance.now()
      res.once('finish', () => { tally.add(res.statusCode, performance.now() - began) })
      gen.dispatch(req, res)
    }
    this.#timer = setInterval(() => this.#judge(), JUDGE_MS)
    this.#timer.unref()
  }

  /** The share of requests the canary serves now, in percent. */
  get share (): number { return this.#share }

  /** End it now, keeping the serving generation (canary abort, a stop, a reload). */
  abort (reason: string): void { this.#end({ result: 'aborted', reason }) }

  /** End it now, promoting the canary (canary promote). */
  promote (): void { this.#end({ result: 'promoted' }) }

  get done (): boolean { return this.#decided !== undefined }

  figures (): { canary: CanaryFigures, serving: CanaryFigures } {
    return { canary: this.#nextTally.figures(this.next.number), serving: this.#servingTally.figures(this.serving.number) }
  }

  status (): CanaryStatus {
    const steps = [this.settings.share, ...this.settings.steps]
    const left = Math.max(0, (steps.length - this.#step) * this.settings.window - (Date.now() - this.#stepStarted))
    return { share: this.#share, step: this.#step + 1, steps: steps.length, since: Date.now() - this.startedAt, left, ...this.figures() }
  }

  report (verdict: Verdict): CanaryReport {
    return { ...verdict, duration: Date.now() - this.startedAt, share: this.#share, ...this.figures() }
  }

  #picker (): (req: Request) => boolean {
    const sticky = this.settings.sticky
    if (sticky === undefined) return () => Math.random() * 100 < this.#share
    const key = 'header' in sticky
      ? (req: Request) => { const v = (req as IncomingMessage).headers[sticky.header.toLowerCase()]; return Array.isArray(v) ? v[0] : v }
      : (req: Request) => cookie((req as IncomingMessage).headers.cookie, sticky.cookie)
    return (req) => {
      const k = key(req)
      return k === undefined ? Math.random() * 100 < this.#share : bucket(k) < this.#share
    }
  }

  #judge (): void {
    const { minRequests, maxErrorRate, maxLatencyRatio, latencyFloor, window } = this.settings
    const c = this.#nextTally
    const s = this.#servingTally
    if (c.requests >= minRequests) {
      // Errors are judged as soon as the canary has its samples: a clearly bad one goes at once.
      const baseline = s.requests >= minRequests ? s.errorRate : 0
      if (c.errorRate - baseline > maxErrorRate) {
        return this.#end({ result: 'rolled-back', criterion: 'errors', reason: `5xx share ${pct(c.errorRate)} against ${pct(baseline)} (at most ${pct(maxErrorRate)} more)` })
      }
      // Latency once both have enough times for a p99 to mean something.
      if (s.requests >= minRequests && Math.min(c.samples, s.samples) >= Math.max(minRequests, P99_SAMPLES)) {
        const cp = c.p99() as number
        const sp = s.p99() as number
        const limit = Math.max(sp * maxLatencyRatio, sp + latencyFloor)
        this.#slow = cp > limit ? this.#slow + 1 : 0
        if (this.#slow >= SLOW_TURNS) {
          return this.#end({ result: 'rolled-back', criterion: 'latency', reason: `p99 ${cp.toFixed(1)} ms against ${sp.toFixed(1)} ms (at most ${limit.toFixed(1)} ms)` })
        }
      }
    }
    if (Date.now() - this.#stepStarted < window) return
    if (c.requests < minRequests) {
      // An idle listener (neither generation had enough requests): nothing to judge and nothing at risk; the canary goes on as a restart would.
      if (s.requests < minRequests) {
        return this.#end(this.settings.whenIdle === 'abort'
          ? { result: 'aborted', reason: `too few requests to judge: ${c.requests} on the canary and ${s.requests} on the serving generation in ${Math.round(window / 1000)} s (at least ${minRequests})` }
          : { result: 'promoted', idle: true })
      }
      // A canary short of requests while the serving one has them waits for them, up to three windows.
      if (Date.now() - this.#stepStarted >= 3 * window) this.#end({ result: 'aborted', reason: `too few requests to judge: ${c.requests} on the canary in ${Math.round(3 * window / 1000)} s (at least ${minRequests})` })
      return
    }
    const steps = this.settings.steps
    if (this.#step < steps.length) {
      this.#share = steps[this.#step] as number
      this.#step++
      this.#stepStarted = Date.now()
      return
    }
    this.#end({ result: 'promoted' })
  }

  #end (verdict: Verdict): void {
    if (this.#decided !== undefined) return
    this.#decided = verdict
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#decide(verdict)
  }
}

function pct (rate: number): string { return `${(rate * 100).toFixed(1)} %` }

export type { Response }
