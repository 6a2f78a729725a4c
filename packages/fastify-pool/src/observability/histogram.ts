// The request-duration histogram, kept in plain arrays: observing a request
// is an index lookup and two additions, where prom-client's Histogram hashes
// its four labels on every observation. It registers in a prom-client
// Registry as a metric of its own (the registry reads `get()`), so the
// exposition, Registry.merge() and the cluster aggregator treat it as theirs.

/** One label set: per-bucket counts (not cumulative), their sum and count. */
export interface Series {
  readonly labels: Readonly<Record<string, string>>
  readonly counts: Float64Array
  sum: number
  count: number
}

interface Value { labels: Record<string, string | number>, value: number, metricName: string }

export class RouteHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly buckets: readonly number[]
  #series = new Map<string, Series>()

  constructor (name: string, help: string, buckets: readonly number[]) {
    this.name = name
    this.help = help
    this.buckets = [...buckets].sort((a, b) => a - b)
  }

  /** The series of a label set, made on first use. Keep it: observing it needs no lookup. */
  series (labels: Record<string, string>): Series {
    const key = JSON.stringify(labels)
    let series = this.#series.get(key)
    if (series === undefined) {
      series = { labels: Object.freeze({ ...labels }), counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }
      this.#series.set(key, series)
    }
    return series
  }

  /** Every series, for a reader that adds them up (traffic.ts). */
  all (): IterableIterator<Series> { return this.#series.values() }

  /** Count one observation, in seconds. */
  observe (series: Series, seconds: number): void {
    const buckets = this.buckets
    for (let i = 0; i < buckets.length; i++) {
      if (seconds <= (buckets[i] as number)) { series.counts[i] = (series.counts[i] as number) + 1; break }
    }
    series.sum += seconds
    series.count++
  }

  /** What prom-client's registry reads: cumulative buckets, +Inf, sum and count per series. */
  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: Value[] }> {
    const values: Value[] = []
    for (const s of this.#series.values()) {
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i] as number
        values.push({ labels: { ...s.labels, le }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** Registry.resetMetrics(): every series back to zero (kept, so that held series stay valid). */
  reset (): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0)
      s.sum = 0
      s.count = 0
    }
  }
}
