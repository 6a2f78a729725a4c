// 4. Drain: how long stop() takes with K idle keep-alive connections (it
// should not grow with K) and with one request in flight of known length (it
// should be that length plus a few milliseconds).
import { Agent, request } from 'node:http'
import type { Socket } from 'node:net'
import { Child, profileArgs } from './child.ts'
import type { InflightResult, Kind } from './drain-child.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmt, fmtInt, fmtMs, median, slope, table, verdict } from './stats.ts'

/** How long after a held request ends a close may take before the client lets go. */
const CAP_MS = 1000
/** "A few milliseconds" of drain overhead. */
const OVER_MS = 15

interface IdleResult { ms: number[], open: number[], resets: number }

/**
 * stop() with k keep-alive connections that each served one request and sit
 * idle. The connections are this process's, so the server's process spends
 * nothing on their side of the close.
 */
async function idleRuns (child: Child, kind: Kind, k: number, runs: number): Promise<IdleResult> {
  const out: IdleResult = { ms: [], open: [], resets: 0 }
  for (let i = 0; i < runs; i++) {
    const { url } = await child.call<{ url: string }>('idleStart', { kind })
    // maxFreeSockets: the default (256) would close the rest on this side.
    const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity })
    const sockets = new Set<Socket>()
    const closed: Array<Promise<void>> = []
    const watch = (socket: Socket): void => {
      if (sockets.has(socket)) return
      sockets.add(socket)
      // An error here would mean a client lost a connection it might have reused.
      socket.on('error', () => { out.resets++ })
      closed.push(new Promise(resolve => socket.once('close', () => resolve())))
    }
    try {
      await Promise.all(Array.from({ length: k }, () => new Promise<void>((resolve, reject) => {
        const req = request(url, { agent }, (res) => { res.resume(); res.on('end', resolve) })
        req.on('socket', watch)
        req.on('error', reject)
        req.end()
      })))
      const { open, ms } = await child.call<{ open: number, ms: number }>('idleStop', {}, 60_000)
      out.ms.push(ms)
      out.open.push(open)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(closed), new Promise(resolve => { timer = setTimeout(resolve, 10_000) })])
      clearTimeout(timer)
    } finally {
      agent.destroy()
    }
  }
  return out
}

/** Bare Fastify's figure, or a note that it waited for the client to hang up. */
function closeReference (r: InflightResult, holdMs: number): string {
  if (r.capped === 0) return fmtMs(median(r.ms))
  return `waits for the client (${r.capped}/${r.ms.length} runs > ${holdMs + CAP_MS} ms)`
}

export async function drain (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.drain
  const params = `one listener on 127.0.0.1:0; K = ${o.idle.join(', ')} idle keep-alive connections; one in-flight request of ${o.holds.join(' or ')} ms, stop() called as it enters its handler; ${o.runs} runs each, a fresh server per run`
  log(`\n## 4. Drain\n${params}`)
  const idle = new Map<Kind, Map<number, IdleResult>>()
  const held = new Map<Kind, Map<number, InflightResult>>()
  const leaks: string[] = []
  for (const kind of ['pool', 'fastify'] as Kind[]) {
    const child = await Child.spawn('drain-child.ts', [], { nodeArgs: profileArgs(options.profileDir, `drain-${kind}`) })
    try {
      await idleRuns(child, kind, 10, 1)
      const byK = new Map<number, IdleResult>()
      for (const k of o.idle) {
        const r = await idleRuns(child, kind, k, o.runs)
        byK.set(k, r)
        log(`  ${kind.padEnd(7)} K=${String(k).padEnd(5)} stop ${fmtMs(median(r.ms))} ms  (server saw ${median(r.open)} connections, client resets ${r.resets})`)
      }
      idle.set(kind, byK)
      const byHold = new Map<number, InflightResult>()
      for (const holdMs of o.holds) {
        const r = await child.call<InflightResult>('inflight', { kind, holdMs, runs: o.runs, capMs: CAP_MS }, 120_000)
        byHold.set(holdMs, r)
        log(`  ${kind.padEnd(7)} hold ${holdMs} ms: stop ${fmtMs(median(r.ms))} ms, over the request ${fmtMs(median(r.over))} ms, statuses ${[...new Set(r.statuses)].join(',')}${r.capped > 0 ? `, ${r.capped} waited for the client to let go` : ''}`)
      }
      held.set(kind, byHold)
    } finally {
      if (!await child.close()) leaks.push(`drain child (${kind})`)
    }
  }

  const P = idle.get('pool') as Map<number, IdleResult>
  const F = idle.get('fastify') as Map<number, IdleResult>
  const largest = o.idle[o.idle.length - 1] as number
  const smallest = o.idle[0] as number
  // Closing a socket costs some microseconds, so the time does grow with K;
  // what must not happen is a wait per connection (keep-alive timeout, a
  // serial close). Bare Fastify's close() shows the cost of the closes alone.
  const ks = o.idle
  const perConn = (r: Map<number, IdleResult>): number => slope(ks, ks.map(k => median((r.get(k) as IdleResult).ms))) * 1000
  const poolPer = perConn(P)
  const fastifyPer = perConn(F)
  const flat = poolPer <= Math.max(2 * fastifyPer, 10) && median((P.get(largest) as IdleResult).ms) < 1000
  const resets = [...P.values()].reduce((n, r) => n + r.resets, 0)
  const idleRows = o.idle.map(k => {
    const p = P.get(k) as IdleResult
    const f = F.get(k) as IdleResult
    return [fmtInt(k), fmtInt(median(p.open)), fmtMs(median(p.ms)), fmtMs(Math.max(...p.ms)), String(p.resets), fmtMs(median(f.ms))]
  })
  const HP = held.get('pool') as Map<number, InflightResult>
  const HF = held.get('fastify') as Map<number, InflightResult>
  const heldRows = o.holds.map(h => {
    const p = HP.get(h) as InflightResult
    const f = HF.get(h) as InflightResult
    const ok = p.statuses.every(s => s === 200)
    return [`${h} ms`, fmtMs(median(p.ms)), fmtMs(median(p.over)), fmtMs(Math.max(...p.over)), `${ok ? 'all 200' : `**${p.statuses.join(', ')}**`}, ${p.connectionClose}/${p.statuses.length} with Connection: close`, verdict(median(p.over) <= OVER_MS && ok && p.capped === 0), closeReference(f, h)]
  })
  const misses: string[] = []
  if (!flat) misses.push(`stop with ${largest} idle connections took ${fmtMs(median((P.get(largest) as IdleResult).ms))} ms against ${fmtMs(median((P.get(smallest) as IdleResult).ms))} ms with ${smallest}: ${fmt(poolPer, 0)} µs per connection, bare Fastify ${fmt(fastifyPer, 0)} µs`)
  if (resets > 0) misses.push(`${resets} client connection(s) saw an error while idle connections were closed`)
  for (const h of o.holds) {
    const p = HP.get(h) as InflightResult
    if (median(p.over) > OVER_MS) misses.push(`stop with a ${h} ms request in flight took ${fmtMs(median(p.over))} ms more than the request (target ≤ ${OVER_MS})`)
    if (p.capped > 0) misses.push(`stop with a ${h} ms request in flight waited for the client to close its keep-alive connection (${p.capped} of ${p.ms.length} runs)`)
    if (!p.statuses.every(s => s === 200)) misses.push(`the ${h} ms request in flight did not always complete with 200 (${p.statuses.join(', ')})`)
  }
  const body = [
    table(['idle keep-alive connections K', 'open at stop()', 'pool stop ms (median)', 'pool stop ms (max)', 'client errors', 'bare Fastify close() ms'], idleRows),
    '',
    `Each idle connection adds ${fmt(poolPer, 0)} µs to the pool's stop() (least squares over K), against ${fmt(fastifyPer, 0)} µs for bare Fastify's close(): that is the cost of destroying a socket, not a wait. No wait per connection (at most twice Fastify's cost per connection, under 1 s in all): ${verdict(flat)}.`,
    '',
    table(['request in flight', 'pool stop ms', 'beyond the request ms (median)', 'beyond (max)', 'client got', `≤ ${OVER_MS} ms`, 'bare Fastify close() ms'], heldRows),
    '',
    '"Beyond the request" is the time from the handler entering to stop() resolving, minus the request\'s length: what draining added.',
    `A close that had not resolved ${CAP_MS} ms after the request ended is shown as "waits for the client": the response went out as keep-alive, so the server waited for the client to close the connection (or for its keep-alive timeout); the benchmark's client then let go.`,
    ...leaks.map(l => `Warning: ${l} did not exit by itself (a timer or socket left open); it was killed.`)
  ].join('\n')
  return { title: '4. Drain', params, body, misses }
}
