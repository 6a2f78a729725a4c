// The overload suite's prober, in a process of its own (see child.ts): what
// a kubelet or a load balancer does to the admin listener while the public
// one is flooded. Every `interval` ms it sends one GET to each URL, each on a
// new connection, and counts as failed any answer that is not 2xx or does not
// come within the timeout.
import { request } from 'node:http'
import { setPriority } from 'node:os'
import { performance } from 'node:perf_hooks'
import { serve } from './child.ts'
import { quantileSorted } from './stats.ts'

export interface ProbeArgs {
  urls: string[]
  /** Milliseconds between rounds. */
  interval: number
  seconds: number
  timeout: number
}

export interface ProbeResult {
  probes: number
  failed: number
  /** Latency of every probe, ms: a timed-out one counts as the timeout. */
  p50: number
  p99: number
  max: number
  /** Why the failed ones failed: a status, 'timeout' or an error code, with counts. */
  reasons: Record<string, number>
  /** Per path: probes, failures and p99 (ms). */
  paths: Record<string, { probes: number, failed: number, p99: number }>
}

interface Outcome { path: string, ms: number, failure: string | undefined }

function summary (outcomes: Outcome[]): { probes: number, failed: number, p50: number, p99: number, max: number } {
  const times = outcomes.map(o => o.ms).sort((a, b) => a - b)
  return {
    probes: outcomes.length,
    failed: outcomes.filter(o => o.failure !== undefined).length,
    p50: quantileSorted(times, 0.5),
    p99: quantileSorted(times, 0.99),
    max: times.at(-1) ?? Number.NaN
  }
}

function probe (url: string, timeout: number): Promise<Outcome> {
  const began = performance.now()
  const { pathname: path } = new URL(url)
  return new Promise(resolve => {
    let settled = false
    const settle = (failure: string | undefined): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ path, ms: performance.now() - began, failure })
    }
    // agent: false is a new connection each time, closed after the answer.
    const req = request(url, { agent: false }, (res) => {
      res.resume()
      res.once('end', () => settle(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300 ? undefined : String(res.statusCode)))
      res.once('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'error'))
    })
    req.once('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'error'))
    const timer = setTimeout(() => { settle('timeout'); req.destroy() }, timeout)
    req.end()
  })
}

async function run ({ urls, interval, seconds, timeout }: ProbeArgs): Promise<ProbeResult> {
  for (const url of urls) {
    if (new URL(url).hostname !== '127.0.0.1') throw new Error(`probes go to 127.0.0.1 only, not ${url}`)
  }
  const pending: Array<Promise<Outcome>> = []
  const ends = performance.now() + seconds * 1000
  // Rounds on a fixed schedule, whether the last ones came back or not.
  await new Promise<void>(resolve => {
    const round = (): void => {
      if (performance.now() >= ends) {
        clearInterval(timer)
        resolve()
        return
      }
      for (const url of urls) pending.push(probe(url, timeout))
    }
    const timer = setInterval(round, interval)
    round()
  })
  const outcomes = await Promise.all(pending)
  const reasons: Record<string, number> = {}
  for (const { failure } of outcomes) if (failure !== undefined) reasons[failure] = (reasons[failure] ?? 0) + 1
  const paths: ProbeResult['paths'] = {}
  for (const path of new Set(outcomes.map(o => o.path))) {
    const { probes, failed, p99 } = summary(outcomes.filter(o => o.path === path))
    paths[path] = { probes, failed, p99 }
  }
  return { ...summary(outcomes), reasons, paths }
}

// The flood shares this core at a lower priority (overload-flood.ts); a
// higher one here, where allowed, keeps this process ahead of the kernel
// work the flood's connections cause too.
try {
  setPriority(-5)
} catch {}
serve({ run })
