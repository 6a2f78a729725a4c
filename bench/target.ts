// The server under test, run in its own process (see child.ts). One route,
// GET / -> {"hello":"world"}, served by one of:
//   node      bare node:http
//   fastify   bare Fastify 5, listen() on port 0
//   pool      a pooled listener with the pool's defaults
//   full      a pooled listener with health routes, monitoring and drain tracking on
//   metrics   a pooled listener with the pool's Prometheus metrics on (served by the same listener)
// `pool` and `full` take a listener count (for the restart benchmark).
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance, PerformanceObserver } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPool, type Pool } from 'fastify-pool'
import { serve } from './child.ts'

const BODY = { hello: 'world' }
const BODY_TEXT = JSON.stringify(BODY)

const plugin = async (app: FastifyInstance): Promise<void> => {
  app.get('/', async () => BODY)
}

export type Variant = 'node' | 'fastify' | 'pool' | 'full' | 'metrics'

export interface TargetInfo {
  urls: string[]
  /** What this variant runs besides the route, for the report. */
  features: string
}

/** CPU ms, event-loop active and idle ms, wall ms, and ms spent in garbage collection, all since the process began. */
export interface Sample { cpu: number, active: number, idle: number, wall: number, gc: number }

// Garbage collection time, from the runtime's own gc entries.
let gcMs = 0
new PerformanceObserver((list) => { for (const e of list.getEntries()) gcMs += e.duration }).observe({ entryTypes: ['gc'] })

const variant = process.argv[2] as Variant
const listeners = Number(process.argv[3] ?? 1)
const MONITOR_INTERVAL = 1000

let stop: () => Promise<void>
let info: TargetInfo
let pool: Pool | undefined

if (variant === 'node') {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(BODY_TEXT) })
    res.end(BODY_TEXT)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  info = { urls: [`http://127.0.0.1:${(server.address() as AddressInfo).port}/`], features: 'node:http, one handler' }
  stop = () => new Promise(resolve => { server.close(() => resolve()); server.closeIdleConnections() })
} else if (variant === 'fastify') {
  const app = Fastify()
  await app.register(plugin)
  await app.listen({ port: 0, host: '127.0.0.1' })
  info = { urls: [`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`], features: 'Fastify() defaults, listen()' }
  stop = () => app.close()
} else if (variant === 'pool' || variant === 'full' || variant === 'metrics') {
  const full = variant === 'full'
  const servers = Array.from({ length: listeners }, (_, i) => ({
    name: `bench-${i}`,
    listen: '127.0.0.1:0',
    ...(full ? { health: { liveness: '/healthz', readiness: '/readyz' } } : {})
  }))
  // BENCH_LOG=warn shows the pool's own warnings (a drain deadline reached, say) while diagnosing.
  pool = createPool({
    servers,
    handlers: plugin,
    // BENCH_OVERLOAD=off measures the request path without load shedding (issue 33's before and after).
    ...(process.env.BENCH_OVERLOAD === 'off' ? { defaults: { overload: false } } : {}),
    ...(variant === 'metrics' ? { metrics: { listener: 'bench-0' } } : {}),
    ...(process.env.BENCH_LOG === undefined ? {} : { logger: { level: process.env.BENCH_LOG } })
  })
  await pool.start()
  // BENCH_CANARY=PCT: every listener runs a canary of PCT % (never judged: its window is an hour and it needs more requests than a run has), to measure the request path during one (issue 36).
  const canaryShare = process.env.BENCH_CANARY === undefined ? undefined : Number(process.env.BENCH_CANARY)
  if (canaryShare !== undefined) {
    pool.restart({ canary: { share: canaryShare, window: 3_600_000, minRequests: 1_000_000_000 } }).catch(() => {})
    while (pool.load('bench-0')?.canary === undefined) await new Promise(resolve => setImmediate(resolve))
  }
  const monitoring = full ? await startMonitoring(pool) : undefined
  const features = full
    ? `health routes /healthz and /readyz, drain tracking, ${monitoring?.what ?? ''}`
    : variant === 'metrics'
      ? 'createPool() defaults and metrics: { listener }: the request histogram per listener, method, route and status'
      : 'createPool() defaults: health routes on, drain tracking (always on), no logger'
  info = { urls: pool.list('name', 'expose').map(u => `${u}/`), features: canaryShare === undefined ? features : `${features}; a canary on ${canaryShare} % of the requests` }
  stop = async () => {
    clearInterval(monitoring?.timer)
    await pool?.stop({ timeout: 5000 })
  }
} else {
  throw new Error(`unknown variant ${variant}`)
}

/**
 * Monitoring comes from another issue: use what this build has. Periodic
 * checks (startMonitor) probe each listener's readiness route over HTTP, as a
 * load balancer would; failing that, monitor() is polled; failing that,
 * status() stands in for a metrics scraper.
 */
async function startMonitoring (p: Pool): Promise<{ what: string, timer: NodeJS.Timeout | undefined }> {
  const api = p as unknown as { startMonitor?: (o: { interval: number }) => Promise<void>, monitor?: () => Promise<unknown> }
  if (typeof api.startMonitor === 'function') {
    await api.startMonitor.call(p, { interval: MONITOR_INTERVAL })
    // pool.stop() ends the periodic checks.
    return { what: `periodic checks: pool.startMonitor({ interval: ${MONITOR_INTERVAL} })`, timer: undefined }
  }
  const poll = typeof api.monitor === 'function' ? api.monitor.bind(p) : undefined
  const timer = setInterval(() => { poll === undefined ? p.status() : poll().catch(() => {}) }, MONITOR_INTERVAL)
  timer.unref()
  return {
    what: poll === undefined
      ? `no monitoring in this build, so status() every ${MONITOR_INTERVAL} ms instead`
      : `pool.monitor() polled every ${MONITOR_INTERVAL} ms`,
    timer
  }
}

// Rolling restarts, driven by the restart benchmark.
const restarts = { on: false, count: 0, failures: 0, longest: 0 }
let restartLoop: Promise<void> | undefined

async function shutdown (): Promise<void> {
  restarts.on = false
  await restartLoop
  await stop()
}

if (process.send === undefined) {
  // Run by hand or by wrk.sh: print the URLs, serve until SIGINT or SIGTERM,
  // then stop and let the process end by itself.
  console.log(info.urls.join(' '))
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    shutdown().catch((err: Error) => { console.error(err); process.exitCode = 1 })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
} else {
  serveParent()
}

function serveParent (): void {
  serve({
    info: () => info,
    /** CPU time and event-loop activity so far: the parent takes differences to see whether this server was the bottleneck. */
    sample: (): Sample => {
      const cpu = process.cpuUsage()
      const elu = performance.eventLoopUtilization()
      return { cpu: (cpu.user + cpu.system) / 1000, active: elu.active, idle: elu.idle, wall: performance.now(), gc: gcMs }
    },
    restartStart: ({ gap, deadline }: { gap: number, deadline: number }) => {
      if (pool === undefined) throw new Error('restarts need a pool variant')
      const p = pool
      Object.assign(restarts, { on: true, count: 0, failures: 0, longest: 0 })
      restartLoop = (async () => {
        while (restarts.on) {
          const began = performance.now()
          try {
            // Resolves at the swap; each report's retired once the old instance is closed.
            const reports = await p.restart({ timeout: deadline })
            const retired = await Promise.all(reports.map(r => r.retired))
            if (retired.some(r => (r?.cut ?? 0) > 0)) restarts.failures++
            restarts.count++
          } catch {
            restarts.failures++
          }
          restarts.longest = Math.max(restarts.longest, performance.now() - began)
          if (gap > 0 && restarts.on) await new Promise(resolve => setTimeout(resolve, gap).unref())
        }
      })()
    },
    restartStop: async () => {
      restarts.on = false
      await restartLoop
      const { count, failures, longest } = restarts
      return { count, failures, longest }
    }
  }, shutdown)
}
