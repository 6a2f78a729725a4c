// Child process of the scale benchmark (run with --expose-gc): starts and
// stops N port-0 listeners, as a pool or as bare Fastify instances, and times
// selection over many unstarted listeners.
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPool, type Pool } from 'fastify-pool'
import { serve } from './child.ts'

export type Kind = 'pool' | 'fastify'

export interface LifecycleResult {
  /** Milliseconds per run. createPool() only for the pool (validation and Listener objects). */
  create: number[]
  /** Fastify: build N instances and listen() with Promise.all. Pool: pool.start(). */
  start: number[]
  stop: number[]
  /** Bytes retained while running (heap after GC, and RSS), and heap still retained once stopped. */
  heap: number[]
  rss: number[]
  retained: number[]
}

export interface SelectResult {
  create: number[]
  heap: number
  /** Microseconds per call, per operation. */
  ops: Record<string, number[]>
}

// The listener's stop resolves when a held request ends; /hold proves that
// N listeners wait for their requests side by side, not one after another.
let entered = 0
let onEnter: (() => void) | undefined
const plugin = async (app: FastifyInstance, opts: { holdMs?: number }): Promise<void> => {
  app.get('/', async () => ({ hello: 'world' }))
  app.get('/hold', async () => {
    entered++
    onEnter?.()
    await new Promise(resolve => setTimeout(resolve, opts.holdMs ?? 0))
    return { held: true }
  })
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => { throw new Error('run with --expose-gc') })
function heapNow (): { heap: number, rss: number } {
  gc()
  gc()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, rss: m.rss }
}

interface Started { urls: string[], stop: () => Promise<unknown> }

async function startPool (n: number, holdMs: number): Promise<Started & { createMs: number, startMs: number }> {
  const t0 = performance.now()
  const pool: Pool = createPool({
    servers: Array.from({ length: n }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0' })),
    handlers: async (app) => { await app.register(plugin, { holdMs }) }
  })
  const t1 = performance.now()
  await pool.start()
  const t2 = performance.now()
  return { createMs: t1 - t0, startMs: t2 - t1, urls: pool.list('name', 'expose'), stop: () => pool.stop({ timeout: 30_000 }) }
}

async function startFastify (n: number, holdMs: number): Promise<Started & { createMs: number, startMs: number }> {
  const t0 = performance.now()
  const apps = Array.from({ length: n }, () => Fastify().register(plugin, { holdMs }))
  await Promise.all(apps.map(app => app.listen({ port: 0, host: '127.0.0.1' })))
  const t1 = performance.now()
  return {
    createMs: 0,
    startMs: t1 - t0,
    urls: apps.map(app => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`),
    stop: () => Promise.all(apps.map(app => app.close()))
  }
}

const starters = { pool: startPool, fastify: startFastify }

async function lifecycle ({ kind, n, runs }: { kind: Kind, n: number, runs: number }): Promise<LifecycleResult> {
  const out: LifecycleResult = { create: [], start: [], stop: [], heap: [], rss: [], retained: [] }
  for (let i = 0; i < runs; i++) {
    const base = heapNow()
    const r = await startAndStop(kind, n, base)
    // Measured here, once startAndStop's frame is gone: a suspended async
    // function keeps its locals (the pool, the apps) reachable.
    await new Promise(resolve => setImmediate(resolve))
    out.retained.push(heapNow().heap - base.heap)
    out.create.push(r.createMs)
    out.start.push(r.startMs)
    out.stop.push(r.stopMs)
    out.heap.push(r.heap)
    out.rss.push(r.rss)
  }
  return out
}

async function startAndStop (kind: Kind, n: number, base: { heap: number, rss: number }): Promise<{ createMs: number, startMs: number, stopMs: number, heap: number, rss: number }> {
  const s = await starters[kind](n, 0)
  const up = heapNow()
  const t0 = performance.now()
  await s.stop()
  return { createMs: s.createMs, startMs: s.startMs, stopMs: performance.now() - t0, heap: up.heap - base.heap, rss: up.rss - base.rss }
}

/** Milliseconds from stop() to resolved while every listener holds one request of holdMs. */
async function busyStop ({ kind, n, holdMs, runs }: { kind: Kind, n: number, holdMs: number, runs: number }): Promise<{ ms: number[], failed: number }> {
  const ms: number[] = []
  let failed = 0
  for (let i = 0; i < runs; i++) {
    const s = await starters[kind](n, holdMs)
    entered = 0
    const all = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${entered} of ${n} held requests arrived`)), 20_000)
      onEnter = () => { if (entered === n) { clearTimeout(timer); resolve() } }
    })
    const replies = s.urls.map(url => get(`${url}/hold`))
    await all
    onEnter = undefined
    const t0 = performance.now()
    await s.stop()
    ms.push(performance.now() - t0)
    for (const status of await Promise.all(replies)) if (status !== 200) failed++
  }
  return { ms, failed }
}

function get (url: string): Promise<number> {
  return new Promise(resolve => {
    const req = request(url, { agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
    req.on('error', () => resolve(0))
    req.end()
  })
}

async function select ({ n, runs }: { n: number, runs: number }): Promise<SelectResult> {
  const servers = Array.from({ length: n }, (_, i) => ({ name: `api-${i}`, listen: '127.0.0.1:0' }))
  const create: number[] = []
  let pool: Pool | undefined
  let heap = 0
  for (let i = 0; i < runs; i++) {
    pool = undefined
    const base = heapNow().heap
    const t0 = performance.now()
    pool = createPool({ servers, handlers: plugin })
    create.push(performance.now() - t0)
    heap = heapNow().heap - base
  }
  const p = pool as Pool
  const ops: Record<string, () => unknown> = {
    'filter(name, "api-1*")': () => p.filter('name', 'api-1*'),
    'filter(name, /7$/)': () => p.filter('name', /7$/),
    'filter(bind, "127.0.0.1:*")': () => p.filter('bind', '127.0.0.1:*'),
    'filter(name, "api-*").filter(name, "*5")': () => p.filter('name', 'api-*').filter('name', '*5'),
    'list(name, bind)': () => p.list('name', 'bind'),
    'list(name, name, "api-9*")': () => p.list('name', 'name', 'api-9*')
  }
  const out: Record<string, number[]> = {}
  for (const [name, op] of Object.entries(ops)) {
    out[name] = []
    op()
    for (let i = 0; i < runs; i++) {
      // Enough calls for at least 20 ms, so the clock's resolution does not matter.
      let calls = 0
      const t0 = performance.now()
      let t = t0
      while (t - t0 < 20) {
        op()
        calls++
        t = performance.now()
      }
      out[name].push((t - t0) * 1000 / calls)
    }
  }
  return { create, heap, ops: out }
}

serve({ lifecycle, busyStop, select })
