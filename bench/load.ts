// The load generators: autocannon, driven programmatically, and wrk; always
// against 127.0.0.1 and always bounded in time.
import { execFile, spawnSync } from 'node:child_process'
import autocannon from 'autocannon'
import { quantileSorted } from './stats.ts'

export interface LoadOptions {
  /** Connections in all, split between the URLs. */
  connections: number
  pipelining: number
  /** Seconds. */
  duration: number
}

export interface LoadResult {
  /** Successful (2xx) responses per second. */
  rps: number
  /** Latency percentiles of 2xx responses, in milliseconds. */
  p50: number
  p99: number
  responses: number
  /** Connection errors, timeouts and non-2xx responses: all should be 0. */
  errors: number
  non2xx: number
  seconds: number
}

/**
 * autocannon's own histogram keeps whole milliseconds, too coarse to compare
 * two servers within 2 %; its 'response' event has the exact duration, so the
 * percentiles are computed here from every response.
 */
class Samples {
  #data = new Float64Array(1 << 16)
  length = 0
  push (value: number): void {
    if (this.length === this.#data.length) {
      const grown = new Float64Array(this.#data.length * 2)
      grown.set(this.#data)
      this.#data = grown
    }
    this.#data[this.length++] = value
  }

  sorted (): Float64Array { return this.#data.subarray(0, this.length).sort() }
}

/**
 * Load one or more URLs at once for `duration` seconds, the connections split
 * between them; the percentiles cover every response.
 */
export async function load (urls: string | readonly string[], options: LoadOptions): Promise<LoadResult> {
  const targets = typeof urls === 'string' ? [urls] : urls
  for (const u of targets) {
    const host = new URL(u).hostname
    if (host !== '127.0.0.1' && host !== '[::1]') throw new Error(`load is only sent to loopback, not ${host}`)
  }
  const samples = new Samples()
  const share = Math.max(1, Math.floor(options.connections / targets.length))
  const results = await Promise.all(targets.map(url => new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url,
      connections: share,
      pipelining: options.pipelining,
      duration: options.duration,
      // Seconds before a request counts as an error.
      timeout: 10
    }, (err, result) => err === null || err === undefined ? resolve(result) : reject(err))
    instance.on('response', (_client, status, _bytes, time) => {
      if (status >= 200 && status < 300) samples.push(time)
    })
  })))
  const sorted = samples.sorted()
  const seconds = Math.max(...results.map(r => (r.finish.getTime() - r.start.getTime()) / 1000))
  const non2xx = results.reduce((n, r) => n + r.non2xx, 0)
  return {
    rps: sorted.length / seconds,
    p50: quantileSorted(sorted, 0.5),
    p99: quantileSorted(sorted, 0.99),
    responses: sorted.length,
    // autocannon's errors include its timeouts.
    errors: results.reduce((n, r) => n + r.errors, 0) + non2xx,
    non2xx,
    seconds
  }
}

/** True when wrk is installed (apt-get install -y wrk). */
export function wrkAvailable (): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined
}

/**
 * Load one URL with wrk (one thread, keep-alive, no pipelining): a load
 * generator in C that needs far less CPU per request than autocannon, so on
 * two cores the server, not the generator, is what is measured.
 */
export async function loadWrk (url: string, options: Omit<LoadOptions, 'pipelining'>): Promise<LoadResult> {
  const host = new URL(url).hostname
  if (host !== '127.0.0.1' && host !== '[::1]') throw new Error(`load is only sent to loopback, not ${host}`)
  const out = await new Promise<string>((resolve, reject) => {
    // wrk takes whole seconds only (-d0.5s is a usage error): a quick run's half-second warm-up is one second here.
    execFile('wrk', ['-t1', `-c${options.connections}`, `-d${Math.max(1, Math.round(options.duration))}s`, '--latency', url], { timeout: (options.duration + 30) * 1000 }, (err, stdout) => {
      if (err !== null) reject(err)
      else resolve(stdout)
    })
  })
  const number = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0)
  const ms = (label: string): number => {
    const m = new RegExp(`^\\s+${label}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out)
    if (m === null) return Number.NaN
    const v = Number(m[1])
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v
  }
  const responses = number(/(\d+) requests in/)
  const seconds = Number(/requests in ([\d.]+)s/.exec(out)?.[1] ?? options.duration)
  const non2xx = number(/Non-2xx or 3xx responses: (\d+)/)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = non2xx + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((n, x) => n + Number(x), 0))
  return { rps: (responses - non2xx) / seconds, p50: ms('50%'), p99: ms('99%'), responses: responses - non2xx, errors, non2xx, seconds }
}
