// 5. One speed per build: a process must not land in a slow mode. The first
// version ran at one of two speeds (about 1.08x or 1.4x bare Fastify's CPU
// per request, a third of pooled processes in the slow one). This suite
// starts a fresh server process per run, alternating bare Fastify and the
// pool, measures each once, and reports the spread: a slow mode shows as
// pooled processes far above the others.
import { performance } from 'node:perf_hooks'
import { Child } from './child.ts'
import { load } from './load.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmt, fmtRatio, median, table, verdict } from './stats.ts'
import type { Sample, TargetInfo, Variant } from './target.ts'

const VARIANTS: Array<{ id: Variant, label: string }> = [
  { id: 'fastify', label: 'Fastify' },
  { id: 'pool', label: 'pool, defaults' }
]
/** A process this much above bare Fastify's median CPU per request is in a slow mode. */
const SLOW = 1.15

export async function modes (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.modes
  const params = `${o.processes} fresh processes per variant, alternating; each warmed ${o.warmup} s, then one ${o.duration} s run of autocannon -c100 -p10; a process above ${SLOW}x bare Fastify's median CPU per request counts as slow`
  log(`\n## 5. Speed modes\n${params}`)
  const cpu = new Map<Variant, number[]>(VARIANTS.map(v => [v.id, []]))
  for (let i = 0; i < o.processes; i++) {
    for (const v of i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      const child = await Child.spawn('target.ts', [v.id], { cpu: options.pin ? 1 : undefined })
      try {
        const url = (await child.call<TargetInfo>('info')).urls[0] as string
        await load(url, { connections: 100, pipelining: 10, duration: o.warmup })
        const before = await child.call<Sample>('sample')
        const t0 = performance.now()
        const result = await load(url, { connections: 100, pipelining: 10, duration: o.duration })
        const after = await child.call<Sample>('sample')
        const perReq = (after.cpu - before.cpu) * 1000 / result.responses
        cpu.get(v.id)?.push(perReq)
        log(`  process ${i + 1} ${v.label.padEnd(16)} CPU ${fmt(perReq, 2)} µs/req  (${fmt((performance.now() - t0) / 1000, 1)} s, errors ${result.errors})`)
      } finally {
        await child.close()
      }
    }
  }
  const base = median(cpu.get('fastify') ?? [])
  const misses: string[] = []
  const rows = VARIANTS.map(v => {
    const xs = cpu.get(v.id) ?? []
    const slow = xs.filter(x => x > SLOW * base).length
    if (v.id === 'pool' && slow > 0) misses.push(`${slow} of ${xs.length} pooled processes ran above ${SLOW}x bare Fastify's CPU per request`)
    return [v.label, fmt(Math.min(...xs), 2), fmt(median(xs), 2), fmt(Math.max(...xs), 2), fmtRatio(median(xs) / base), fmtRatio(Math.max(...xs) / base), `${slow} of ${xs.length}`, v.id === 'pool' ? verdict(slow === 0) : '']
  })
  const body = [
    table(['server', 'min µs/req', 'median', 'max', 'median ÷ Fastify', 'max ÷ Fastify', `slow (> ${SLOW}x)`, 'no slow mode'], rows),
    '',
    'Each row is one process per run, so it shows what a process can land in, not the noise of one process across runs.'
  ].join('\n')
  return { title: '5. Speed modes', params, body, misses }
}
