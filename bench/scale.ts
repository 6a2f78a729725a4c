// 2. Scale of the lifecycle: start() and stop() of 1..500 port-0 listeners
// against as many bare Fastify instances under Promise.all, the memory each
// listener holds, and filter()/list() over up to 10,000 unstarted listeners.
import { Child, profileArgs } from './child.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import type { Kind, LifecycleResult, SelectResult } from './scale-child.ts'
import { fmt, fmtBytes, fmtInt, fmtMs, fmtRatio, median, slope, table, verdict } from './stats.ts'

const NODE_ARGS = ['--expose-gc']

export async function scale (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.scale
  const params = `N = ${o.sizes.join(', ')} listeners on 127.0.0.1:0, ${o.runs} runs each (one process per kind, N ascending, one warm-up of N = 10 first); stop with a request of ${o.holdMs} ms held on every listener; selection over ${o.selectSizes.map(fmtInt).join(', ')} unstarted listeners`
  log(`\n## 2. Scale of the lifecycle\n${params}`)
  const misses: string[] = []
  const leaks: string[] = []

  // Lifecycle: each kind in a process of its own, so neither warms the other's caches or heap.
  const life = new Map<Kind, Map<number, LifecycleResult>>()
  const busy = new Map<Kind, Map<number, { ms: number[], failed: number }>>()
  for (const kind of ['fastify', 'pool'] as Kind[]) {
    const child = await Child.spawn('scale-child.ts', [], { nodeArgs: [...NODE_ARGS, ...profileArgs(options.profileDir, `scale-${kind}`)] })
    try {
      await child.call('lifecycle', { kind, n: 10, runs: 1 })
      const byN = new Map<number, LifecycleResult>()
      const busyByN = new Map<number, { ms: number[], failed: number }>()
      for (const n of o.sizes) {
        const r = await child.call<LifecycleResult>('lifecycle', { kind, n, runs: o.runs }, 300_000)
        byN.set(n, r)
        const b = await child.call<{ ms: number[], failed: number }>('busyStop', { kind, n, holdMs: o.holdMs, runs: Math.min(o.runs, 3) }, 300_000)
        busyByN.set(n, b)
        log(`  ${kind.padEnd(7)} N=${String(n).padEnd(4)} start ${fmtMs(median(r.start))} ms  stop ${fmtMs(median(r.stop))} ms  heap ${fmtBytes(median(r.heap))}  busy stop ${fmtMs(median(b.ms))} ms`)
      }
      life.set(kind, byN)
      busy.set(kind, busyByN)
    } finally {
      if (!await child.close()) leaks.push(`scale child (${kind})`)
    }
  }

  const F = life.get('fastify') as Map<number, LifecycleResult>
  const P = life.get('pool') as Map<number, LifecycleResult>
  const BF = busy.get('fastify') as Map<number, { ms: number[], failed: number }>
  const BP = busy.get('pool') as Map<number, { ms: number[], failed: number }>
  const m = (xs: number[]): number => median(xs)
  const poolStart = (n: number): number => m((P.get(n) as LifecycleResult).start.map((s, i) => s + ((P.get(n) as LifecycleResult).create[i] as number)))
  const lifeRows = o.sizes.map(n => {
    const f = F.get(n) as LifecycleResult
    const p = P.get(n) as LifecycleResult
    return [
      String(n),
      fmtMs(m(f.start)), `${fmtMs(poolStart(n))} (${fmtMs(m(p.create))})`, fmtRatio(poolStart(n) / m(f.start)),
      fmtMs(m(f.stop)), fmtMs(m(p.stop)), fmtRatio(m(p.stop) / m(f.stop)),
      fmtBytes(m(f.heap) / n), fmtBytes(m(p.heap) / n),
      // RSS moves in pages and arenas: per listener it means something only for many listeners.
      n >= 100 ? fmtBytes(m(f.rss) / n) : 'n/a', n >= 100 ? fmtBytes(m(p.rss) / n) : 'n/a',
      `${fmtBytes(m(f.retained))} / ${fmtBytes(m(p.retained))}`,
      `${fmtMs(m((BF.get(n) as { ms: number[] }).ms))} / ${fmtMs(m((BP.get(n) as { ms: number[] }).ms))}`
    ]
  })
  // Growth: per-listener cost from the least-squares slope, and how the largest N compares with N x the smallest.
  const ns = o.sizes
  const grow = (name: string, f: (n: number) => number): string => {
    const ys = ns.map(f)
    return `${name}: ${fmtMs(slope(ns, ys))} ms per listener`
  }
  const busyMax = Math.max(...ns.map(n => m((BP.get(n) as { ms: number[] }).ms)))
  const busyFailed = ns.reduce((k, n) => k + (BP.get(n) as { failed: number }).failed + (BF.get(n) as { failed: number }).failed, 0)
  // Parallel: the held request's own time plus the time to close N idle
  // listeners (and some slack); serial would be N x holdMs.
  const budget = (n: number): number => o.holdMs + m((P.get(n) as LifecycleResult).stop) + 100
  const parallel = ns.every(n => m((BP.get(n) as { ms: number[] }).ms) <= budget(n))
  if (!parallel) misses.push(`pool stop with ${o.holdMs} ms held on every listener took up to ${fmtMs(busyMax)} ms, more than the hold plus an idle stop: it grows with N (serial?)`)
  if (busyFailed > 0) misses.push(`${busyFailed} held requests failed during stop (expected 200)`)
  const largest = ns[ns.length - 1] as number
  const startRatio = poolStart(largest) / m((F.get(largest) as LifecycleResult).start)
  const stopRatio = m((P.get(largest) as LifecycleResult).stop) / m((F.get(largest) as LifecycleResult).stop)
  if (startRatio > 1.5) misses.push(`pool start of ${largest} listeners took ${fmt(startRatio, 2)}× as long as ${largest} bare Fastify instances`)
  if (stopRatio > 1.5) misses.push(`pool stop of ${largest} listeners took ${fmt(stopRatio, 2)}× as long as ${largest} bare Fastify instances`)

  // Selection over unstarted listeners.
  const sel = new Map<number, SelectResult>()
  const child = await Child.spawn('scale-child.ts', [], { nodeArgs: NODE_ARGS })
  try {
    for (const n of o.selectSizes) {
      const r = await child.call<SelectResult>('select', { n, runs: o.runs }, 300_000)
      sel.set(n, r)
      log(`  select N=${n}: createPool ${fmtMs(median(r.create))} ms, ${Object.entries(r.ops).map(([k, v]) => `${k} ${fmt(median(v), 0)} µs`).join(', ')}`)
    }
  } finally {
    if (!await child.close()) leaks.push('scale child (select)')
  }
  const opNames = Object.keys((sel.get(o.selectSizes[0] as number) as SelectResult).ops)
  const sn = o.selectSizes
  // The last decade only: at the smallest N a call is a few microseconds and fixed costs dominate.
  const big = sn[sn.length - 1] as number
  const small = sn[Math.max(0, sn.length - 2)] as number
  const growth = (f: (r: SelectResult) => number): string => fmt(f(sel.get(big) as SelectResult) / f(sel.get(small) as SelectResult), 1)
  const selRows = [
    ['createPool() (validation)', ...sn.map(n => fmtMs(median((sel.get(n) as SelectResult).create))), `${growth(r => median(r.create))}×`],
    ...opNames.map(op => [op, ...sn.map(n => fmtMs(median((sel.get(n) as SelectResult).ops[op] as number[]) / 1000)), `${growth(r => median(r.ops[op] as number[]))}×`]),
    ['heap per unstarted listener', ...sn.map(n => fmtBytes((sel.get(n) as SelectResult).heap / n)), '']
  ]
  const createGrowth = median((sel.get(big) as SelectResult).create) / median((sel.get(small) as SelectResult).create)
  if (createGrowth > (big / small) * 2) misses.push(`createPool() grows faster than N: ${fmt(createGrowth, 0)}× from ${fmtInt(small)} to ${fmtInt(big)} listeners (${fmt(big / small, 0)}× more)`)

  const body = [
    table(['N', 'Fastify start ms', 'pool start ms (createPool)', 'pool ÷ Fastify', 'Fastify stop ms', 'pool stop ms', 'pool ÷ Fastify', 'heap/listener Fastify', 'heap/listener pool', 'RSS/listener Fastify', 'RSS/listener pool', 'heap left after stop F / pool', `stop, ${o.holdMs} ms held on each, F / pool`], lifeRows),
    '',
    `Growth with N (least squares): ${grow('Fastify start', n => m((F.get(n) as LifecycleResult).start))}; ${grow('pool start', poolStart)}; ${grow('Fastify stop', n => m((F.get(n) as LifecycleResult).stop))}; ${grow('pool stop', n => m((P.get(n) as LifecycleResult).stop))}.`,
    `Stop while every listener holds a ${o.holdMs} ms request: at most ${fmtMs(busyMax)} ms for every N, against ${fmtInt(o.holdMs * largest)} ms if ${largest} listeners drained one after another. Within the hold + the idle stop of N + 100 ms for every N, so listeners drain side by side: ${verdict(parallel)}.`,
    'Start and stop are CPU-bound on one event loop, so they grow linearly with N for both; "not serial" means no per-listener wait adds up, which the held-request column shows.',
    '',
    table(['operation (ms per call)', ...sn.map(n => `N = ${fmtInt(n)}`), `${fmtInt(big)} ÷ ${fmtInt(small)}`], selRows),
    '',
    `Linear growth would be ${fmt(big / small, 0)}× from ${fmtInt(small)} to ${fmtInt(big)} listeners (last column).`,
    ...leaks.map(l => `Warning: ${l} did not exit by itself (a timer or socket left open); it was killed.`)
  ].join('\n')
  return { title: '2. Scale of the lifecycle', params, body, misses }
}
