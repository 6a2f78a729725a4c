// Each listener's request rate, error rate and latency over the last few
// seconds, for an operator (GET /pool, `fastify-pool ps`, the status page),
// read from the request-duration histogram the metrics already keep: nothing
// more is done per request. No timer either: a reading keeps a snapshot of
// the totals (one per second at most), and the figures compare the totals
// now with the newest snapshot at least WINDOW_MS old.
import { performance } from 'node:perf_hooks'
import type { RouteHistogram } from './histogram.ts'
import type { TrafficFigures } from '../config/types.ts'

/** What the histogram holds for one listener: per-bucket counts, all responses, 5xx responses. */
interface Totals { counts: Float64Array, count: number, errors: number }
interface Snapshot { at: number, totals: Map<string, Totals> }

/** The figures compare with a snapshot at least this old, when there is one. */
export const WINDOW_MS = 10_000
const SNAPSHOT_EVERY_MS = 1000

export class TrafficWindow {
  readonly #histogram: RouteHistogram
  // Oldest first; the first is the state when recording began (nothing counted).
  #snapshots: Snapshot[]

  constructor (histogram: RouteHistogram, now = performance.now()) {
    this.#histogram = histogram
    this.#snapshots = [{ at: now, totals: totalsOf(histogram) }]
  }

  /** Every listener's figures now, by name; `names` with no response recorded yet get zeros. */
  read (names: Iterable<string> = [], now = performance.now()): Map<string, TrafficFigures> {
    const snapshots = this.#snapshots
    // Keep the newest snapshot at least WINDOW_MS old, and the ones after it.
    while (snapshots.length > 1 && (snapshots[1] as Snapshot).at <= now - WINDOW_MS) snapshots.shift()
    const base = snapshots[0] as Snapshot
    const totals = totalsOf(this.#histogram)
    if (now - (snapshots[snapshots.length - 1] as Snapshot).at >= SNAPSHOT_EVERY_MS) snapshots.push({ at: now, totals })
    const seconds = Math.max(now - base.at, 1) / 1000
    const figures = new Map<string, TrafficFigures>()
    for (const [listener, t] of totals) {
      let before = base.totals.get(listener)
      // The registry was reset since (resetMetrics()): count from zero.
      if (before !== undefined && before.count > t.count) before = undefined
      const counts = before === undefined ? t.counts : t.counts.map((c, i) => c - (before.counts[i] as number))
      const requests = t.count - (before?.count ?? 0)
      const errors = t.errors - (before?.errors ?? 0)
      figures.set(listener, {
        window: round(seconds),
        requests,
        rate: round(requests / seconds),
        errorRate: requests === 0 ? null : Math.round(errors / requests * 1e4) / 1e4,
        p50: quantile(this.#histogram.buckets, counts, requests, 0.5),
        p99: quantile(this.#histogram.buckets, counts, requests, 0.99)
      })
    }
    for (const name of names) {
      if (!figures.has(name)) figures.set(name, { window: round(seconds), requests: 0, rate: 0, errorRate: null, p50: null, p99: null })
    }
    return figures
  }
}

function totalsOf (histogram: RouteHistogram): Map<string, Totals> {
  const totals = new Map<string, Totals>()
  for (const s of histogram.all()) {
    const listener = s.labels.listener as string
    let t = totals.get(listener)
    if (t === undefined) { t = { counts: new Float64Array(histogram.buckets.length), count: 0, errors: 0 }; totals.set(listener, t) }
    for (let i = 0; i < s.counts.length; i++) t.counts[i] = (t.counts[i] as number) + (s.counts[i] as number)
    t.count += s.count
    if ((s.labels.status_code as string).startsWith('5')) t.errors += s.count
  }
  return totals
}

/**
 * The q-quantile in milliseconds, by linear interpolation inside the bucket
 * that holds it (as Prometheus's histogram_quantile()); a quantile beyond the
 * last bucket is reported as that bucket's bound.
 */
export function quantile (buckets: readonly number[], counts: ArrayLike<number>, total: number, q: number): number | null {
  if (total <= 0) return null
  const rank = q * total
  let below = 0
  for (let i = 0; i < buckets.length; i++) {
    const inBucket = counts[i] as number
    if (below + inBucket >= rank && inBucket > 0) {
      const lower = i === 0 ? 0 : buckets[i - 1] as number
      const upper = buckets[i] as number
      return round((lower + (upper - lower) * (rank - below) / inBucket) * 1000)
    }
    below += inBucket
  }
  return round((buckets[buckets.length - 1] as number) * 1000)
}

function round (n: number): number { return Math.round(n * 100) / 100 }
