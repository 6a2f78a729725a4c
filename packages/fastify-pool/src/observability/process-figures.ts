// What an operator asks of a process besides its listeners: pid, Node's
// version, uptime, CPU, memory and event-loop delay. Read when asked (the
// control API's GET, `fastify-pool ps`); the one thing kept running is
// Node's event-loop delay histogram, which is native and holds no handle.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

/** One process's figures. */
export interface ProcessFigures {
  pid: number
  node: string
  /** When the process started (ISO 8601): after an upgrade, the new process's. */
  startedAt: string
  /** Milliseconds since the process started. */
  uptime: number
  /** Percent of one core, since the previous reading (the first: since the process started). */
  cpu: number
  /** Bytes. */
  memory: { rss: number, heapUsed: number, heapTotal: number }
  /** Milliseconds the event loop was late, since the previous reading. */
  eventLoopDelay: { p50: number, p99: number, max: number }
}

const RESOLUTION_MS = 10
const STARTED_AT = new Date(Date.now() - process.uptime() * 1000).toISOString()

export class ProcessSampler {
  // From the start, so that the first reading already covers a while (the histogram records from its second tick).
  readonly #histogram: IntervalHistogram = startHistogram()
  #cpu = process.cpuUsage()
  #at = performance.now()
  #first = true

  /** The figures now; the CPU and the delay cover the time since the previous call. */
  read (): ProcessFigures {
    const now = performance.now()
    const cpu = process.cpuUsage(this.#first ? undefined : this.#cpu)
    const elapsed = this.#first ? process.uptime() * 1000 : now - this.#at
    this.#cpu = process.cpuUsage()
    this.#at = now
    this.#first = false
    const h = this.#histogram
    const late = (ns: number): number => Number.isFinite(ns) && ns > 0 ? Math.max(0, round(ns / 1e6 - RESOLUTION_MS)) : 0
    const delay = { p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max) }
    // Node skips the first tick after a reset: a stall within one resolution (10 ms) of a reading is missed.
    h.reset()
    const memory = process.memoryUsage()
    return {
      pid: process.pid,
      node: process.version,
      startedAt: STARTED_AT,
      uptime: Math.round(process.uptime() * 1000),
      cpu: elapsed > 0 ? round(((cpu.user + cpu.system) / 1000) / elapsed * 100) : 0,
      memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal },
      eventLoopDelay: delay
    }
  }
}

function startHistogram (): IntervalHistogram {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  h.enable()
  return h
}

function round (n: number): number { return Math.round(n * 10) / 10 }
