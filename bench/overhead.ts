// 1. Request overhead: the same route on bare node:http, bare Fastify, a pooled
// listener with defaults and a pooled listener with everything on, under two
// loads: autocannon with pipelining, and wrk with keep-alive and none (when
// wrk is installed). Each variant is run back to back with bare Fastify, in
// alternating order, and compared with that neighbouring run, so that a
// machine that gets busier or quieter during the run moves both sides of a
// ratio alike. The headline is server CPU time per request, pinned: it does
// not depend on who set the pace.
import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { Child } from './child.ts'
import { load, loadWrk, wrkAvailable, type LoadResult } from './load.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmtInt, fmtMs, fmtRatio, median, table, verdict, fmt } from './stats.ts'
import type { Sample, TargetInfo, Variant } from './target.ts'

const VARIANTS: Array<{ id: Variant, label: string }> = [
  { id: 'node', label: '(a) node:http' },
  { id: 'fastify', label: '(b) Fastify' },
  { id: 'pool', label: '(c) pool, defaults' },
  { id: 'full', label: '(d) pool, all on' },
  { id: 'metrics', label: '(e) pool, metrics' }
]
/** Server CPU per request of a pooled listener ÷ bare Fastify's, at most. */
const TARGET = 1.02
/** With metrics on: req/s ÷ bare Fastify's at least, and CPU per request ÷ the pool's without metrics (c) at most. */
const METRICS_RPS = 0.97
const METRICS_CPU = 1.05

interface Run extends LoadResult {
  /** Event-loop utilisation of the server and of the load generator during the run (1 = saturated). */
  serverElu: number
  clientElu: number
  /** CPU time the server spent per response, in microseconds: unlike req/s, it does not depend on who set the pace. */
  cpuPerReq: number
  /** Share of the server's busy (event-loop active) time spent in garbage collection. */
  gcShare: number
}

interface Profile { name: string, run: (url: string, seconds: number) => Promise<LoadResult> }

export async function overhead (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.overhead
  const wanted = o.loads ?? ['autocannon', 'wrk']
  const profiles: Profile[] = []
  if (wanted.includes('autocannon')) profiles.push({ name: `autocannon -c${o.connections} -p${o.pipelining}`, run: (url, duration) => load(url, { connections: o.connections, pipelining: o.pipelining, duration }) })
  const hasWrk = wrkAvailable()
  if (hasWrk && wanted.includes('wrk')) profiles.push({ name: 'wrk -t1 -c50', run: (url, duration) => loadWrk(url, { connections: 50, duration }) })
  const params = `${profiles.map(p => p.name).join(' and ')}${hasWrk ? '' : ' (wrk is not installed: apt-get install -y wrk)'}; ${o.duration} s per run, ${o.rounds} rounds of (x, Fastify) pairs, ${o.warmup} s warm-up each`
  log(`\n## 1. Request overhead\n${params}`)
  const children = new Map<Variant, Child>()
  const infos = new Map<Variant, TargetInfo>()
  let leaked: string[] = []
  try {
    // Started side by side (they sit idle until their turn).
    await Promise.all(VARIANTS.map(async (v) => {
      const child = await Child.spawn('target.ts', [v.id], { cpu: options.pin ? 1 : undefined })
      children.set(v.id, child)
      infos.set(v.id, await child.call<TargetInfo>('info'))
    }))
    const measure = async (profile: Profile, id: Variant, seconds: number): Promise<Run> => {
      const child = children.get(id) as Child
      const url = (infos.get(id) as TargetInfo).urls[0] as string
      const before = await child.call<Sample>('sample')
      const elu = performance.eventLoopUtilization()
      const result = await profile.run(url, seconds)
      const clientElu = performance.eventLoopUtilization(elu).utilization
      const after = await child.call<Sample>('sample')
      const active = after.active - before.active
      const idle = after.idle - before.idle
      return {
        ...result,
        serverElu: active / (active + idle),
        clientElu,
        cpuPerReq: (after.cpu - before.cpu) * 1000 / result.responses,
        gcShare: (after.gc - before.gc) / active
      }
    }
    const sections: string[] = []
    const misses: string[] = []
    for (const profile of profiles) {
      log(`\n### ${profile.name}`)
      for (const v of VARIANTS) {
        log(`  warm-up ${v.label}`)
        await measure(profile, v.id, o.warmup)
      }
      // Profiles cover the measured runs of the first load only.
      if (options.profileDir !== undefined && profile === profiles[0]) for (const c of children.values()) await c.call('profileStart')
      const { body, missed } = await rounds(profile, o.rounds, o.duration, measure, log)
      if (options.profileDir !== undefined && profile === profiles[0]) {
        for (const [id, c] of children) log(`  profile: ${await c.call<string>('profileStop', { file: join(options.profileDir, `overhead-${id}.cpuprofile`) })}`)
      }
      sections.push(`#### ${profile.name}\n\n${body}`)
      misses.push(...missed.map(m => `${profile.name}: ${m}`))
    }
    leaked = await closeAll(children)

    const body = [
      ...sections,
      '',
      `Ratios are medians of per-pair ratios (each run against the bare Fastify run next to it); other columns are medians of ${o.rounds} runs for (a), (c), (d) and ${o.rounds * 3} for (b).`,
      'Server CPU per request (user + system time of the server process over the responses it sent) does not depend on which side set the pace, and barely on other load on the machine: it is the headline measure of what the pool adds; 1 / (CPU ÷ (b)) is the req/s ratio a saturated server would reach.',
      'GC is the share of the server\'s busy time spent in garbage collection (the runtime\'s gc performance entries).',
      'ELU is event-loop utilisation (1 = never idle): a server below 0.9 was not the bottleneck; a load generator near 1 was at its limit too.',
      `(c) had: ${(infos.get('pool') as TargetInfo).features}.`,
      `(d) had: ${(infos.get('full') as TargetInfo).features}.`,
      ...leaked.map(name => `Warning: ${name} did not exit by itself after stopping (a timer or socket left open); it was killed.`)
    ].join('\n')
    return { title: '1. Request overhead', params, body, misses }
  } finally {
    await closeAll(children)
  }
}

/** The measured rounds of one load profile, and its table. */
async function rounds (profile: Profile, count: number, seconds: number, measure: (p: Profile, id: Variant, s: number) => Promise<Run>, log: Log): Promise<{ body: string, missed: string[] }> {
  const runs = new Map<Variant, Run[]>(VARIANTS.map(v => [v.id, []]))
  const ratios = new Map<Variant, Array<{ rps: number, p50: number, p99: number, cpu: number }>>()
  for (let round = 0; round < count; round++) {
    for (const v of VARIANTS) {
      if (v.id === 'fastify') continue
      const order: Variant[] = round % 2 === 0 ? ['fastify', v.id] : [v.id, 'fastify']
      const pair = new Map<Variant, Run>()
      for (const id of order) {
        const run = await measure(profile, id, seconds)
        pair.set(id, run)
        runs.get(id)?.push(run)
        log(`  round ${round + 1} ${label(id).padEnd(20)} ${fmtInt(run.rps).padStart(8)} req/s  p50 ${fmtMs(run.p50)} ms  p99 ${fmtMs(run.p99)} ms  CPU ${fmt(run.cpuPerReq, 2)} µs/req  GC ${fmt(run.gcShare * 100, 1)} %  ELU server ${fmt(run.serverElu, 2)} client ${fmt(run.clientElu, 2)}${run.errors > 0 ? `  errors ${run.errors}` : ''}`)
      }
      const x = pair.get(v.id) as Run
      const b = pair.get('fastify') as Run
      const list = ratios.get(v.id) ?? []
      list.push({ rps: x.rps / b.rps, p50: x.p50 / b.p50, p99: x.p99 / b.p99, cpu: x.cpuPerReq / b.cpuPerReq })
      ratios.set(v.id, list)
    }
  }
  const missed: string[] = []
  const rows = VARIANTS.map(v => {
    const r = runs.get(v.id) as Run[]
    const q = ratios.get(v.id)
    const cpuRatio = q === undefined ? 1 : median(q.map(x => x.cpu))
    const gated = v.id === 'pool' || v.id === 'full'
    if (gated && cpuRatio > TARGET) missed.push(`${v.label}: ${fmtRatio(cpuRatio)} of bare Fastify's CPU per request (target ≤ ${TARGET})`)
    let metricsVerdict = ''
    if (v.id === 'metrics' && q !== undefined) {
      // Both ratios are to the neighbouring Fastify runs, so their quotient compares (e) with (c).
      const vsPool = cpuRatio / median((ratios.get('pool') ?? [{ cpu: 1 }]).map(x => x.cpu))
      const rps = median(q.map(x => x.rps))
      const ok = rps >= METRICS_RPS && vsPool <= METRICS_CPU
      if (!ok) missed.push(`${v.label}: ${fmtRatio(rps)} of bare Fastify's req/s (target ≥ ${METRICS_RPS}), ${fmtRatio(vsPool)} of the pool's CPU per request without metrics (target ≤ ${METRICS_CPU})`)
      metricsVerdict = `${verdict(ok)} (CPU ÷ (c) ${fmtRatio(vsPool)})`
    }
    return [
      v.label,
      fmt(median(r.map(x => x.cpuPerReq)), 2),
      q === undefined ? '1.000' : fmtRatio(cpuRatio),
      `${fmt(median(r.map(x => x.gcShare)) * 100, 1)} %`,
      fmtInt(median(r.map(x => x.rps))),
      q === undefined ? '1.000' : fmtRatio(median(q.map(x => x.rps))),
      fmtMs(median(r.map(x => x.p50))),
      fmtMs(median(r.map(x => x.p99))),
      q === undefined ? '1.000' : fmtRatio(median(q.map(x => x.p99))),
      `${fmt(median(r.map(x => x.serverElu)), 2)} / ${fmt(median(r.map(x => x.clientElu)), 2)}`,
      String(r.reduce((n, x) => n + x.errors, 0)),
      gated ? verdict(cpuRatio <= TARGET) : metricsVerdict
    ]
  })
  const clientBound = VARIANTS.filter(v => median((runs.get(v.id) as Run[]).map(x => x.serverElu)) < 0.9).map(v => v.label)
  const body = [
    table(['server', 'CPU µs/req', 'CPU ÷ (b)', 'GC', 'req/s', 'req/s ÷ (b)', 'p50 ms', 'p99 ms', 'p99 ÷ (b)', 'ELU server / client', 'errors', `target: CPU ≤ ${TARGET}; (e): req/s ≥ ${METRICS_RPS}, CPU ÷ (c) ≤ ${METRICS_CPU}`], rows),
    '',
    clientBound.length > 0
      ? `Warning: the server's event loop was below 90 % busy for ${clientBound.join(', ')}: the load generator set the pace there; the CPU ratio still holds, the req/s ratio understates any difference.`
      : 'Every server ran with its event loop ≥ 90 % busy: the server, not the load generator, set the pace.'
  ].join('\n')
  return { body, missed }
}

function label (id: Variant): string {
  return VARIANTS.find(v => v.id === id)?.label ?? id
}

/** Close every child; returns the names of those that had to be killed. */
async function closeAll (children: Map<Variant, Child>): Promise<string[]> {
  const out: string[] = []
  await Promise.all([...children].map(async ([id, c]) => { if (!await c.close()) out.push(label(id)) }))
  children.clear()
  return out
}
