// 3. Restart under load: the same steady load on a pool, with and without
// pool.restart() running over and over. Every restart builds new Fastify
// instances and swaps them in on the live sockets; no request may fail.
import { join } from 'node:path'
import { Child } from './child.ts'
import { load, type LoadResult } from './load.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmt, fmtInt, fmtMs, fmtRatio, median, table, verdict } from './stats.ts'
import type { TargetInfo } from './target.ts'

interface Restarts { count: number, failures: number, longest: number }
interface Run extends LoadResult { restarts: Restarts | undefined }

export async function restart (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.restart
  const params = `pool of ${o.listeners} listeners, load spread over all of them: ${o.connections} connections, pipelining ${o.pipelining}, ${o.duration} s per run, ${o.rounds} round(s) of (steady, restarting) in alternating order; restarts back to back with ${o.gap} ms between them, drain deadline ${o.deadline} ms`
  log(`\n## 3. Restart under load\n${params}`)
  const child = await Child.spawn('target.ts', ['pool', String(o.listeners)], { cpu: options.pin ? 1 : undefined })
  let exitedByItself = true
  try {
    const { urls } = await child.call<TargetInfo>('info')
    const loadOptions = { connections: o.connections, pipelining: o.pipelining }
    log('  warm-up')
    await load(urls, { ...loadOptions, duration: Math.min(2, o.duration) })
    const measure = async (restarting: boolean): Promise<Run> => {
      if (restarting) await child.call('restartStart', { gap: o.gap, deadline: o.deadline })
      const result = await load(urls, { ...loadOptions, duration: o.duration })
      const restarts = restarting ? await child.call<Restarts>('restartStop', {}, o.deadline + 30_000) : undefined
      log(`  ${(restarting ? 'restarting' : 'steady').padEnd(10)} ${fmtInt(result.rps).padStart(8)} req/s  p50 ${fmtMs(result.p50)} ms  p99 ${fmtMs(result.p99)} ms  errors ${result.errors}${restarts === undefined ? '' : `  restarts ${restarts.count} (failed ${restarts.failures}, longest ${fmtMs(restarts.longest)} ms)`}`)
      return { ...result, restarts }
    }
    if (options.profileDir !== undefined) await child.call('profileStart')
    const steady: Run[] = []
    const rolling: Run[] = []
    const ratios: Array<{ rps: number, p99: number }> = []
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? [false, true] : [true, false]
      const pair: Run[] = []
      for (const restarting of order) {
        const run = await measure(restarting)
        ;(restarting ? rolling : steady).push(run)
        pair[restarting ? 1 : 0] = run
      }
      const [s, r] = pair as [Run, Run]
      ratios.push({ rps: r.rps / s.rps, p99: r.p99 / s.p99 })
    }
    if (options.profileDir !== undefined) log(`  profile: ${await child.call<string>('profileStop', { file: join(options.profileDir, 'restart.cpuprofile') })}`)
    exitedByItself = await child.close()

    const errors = (runs: Run[]): number => runs.reduce((n, r) => n + r.errors, 0)
    const restartCount = rolling.reduce((n, r) => n + (r.restarts?.count ?? 0), 0)
    const failed = rolling.reduce((n, r) => n + (r.restarts?.failures ?? 0), 0)
    const seconds = rolling.reduce((n, r) => n + r.seconds, 0)
    // A restart resolves once the old generation's requests are done; under
    // this load they take milliseconds, so reaching the deadline means some
    // were never seen to end.
    const longest = Math.max(...rolling.map(r => r.restarts?.longest ?? 0))
    const row = (name: string, runs: Run[], ratio: string, p99Ratio: string, restarts: string): string[] => [
      name, fmtInt(median(runs.map(r => r.rps))), fmtMs(median(runs.map(r => r.p50))), fmtMs(median(runs.map(r => r.p99))), ratio, p99Ratio, restarts, String(errors(runs)), verdict(errors(runs) === 0)
    ]
    const body = [
      table(['load', 'req/s', 'p50 ms', 'p99 ms', 'req/s ÷ steady', 'p99 ÷ steady', 'restarts', 'errors', 'errors = 0'], [
        row('steady, no restart', steady, '1.000', '1.000', '0'),
        row('rolling restart()', rolling, fmtRatio(median(ratios.map(r => r.rps))), fmtRatio(median(ratios.map(r => r.p99))),
          `${restartCount} (${fmt(restartCount / seconds, 1)}/s, longest ${fmtMs(longest)} ms${failed > 0 ? `, **${failed} failed**` : ''})`)
      ]),
      '',
      'Errors count connection errors, timeouts and non-2xx responses seen by the load generator. Each restart of the pool restarts every listener in parallel.',
      ...(exitedByItself ? [] : ['Warning: the server did not exit by itself after stopping (a timer or socket left open); it was killed.'])
    ].join('\n')
    const misses = errors(rolling) + errors(steady) > 0 || failed > 0
      ? [`restart under load: ${errors(rolling)} errors while restarting, ${errors(steady)} steady, ${failed} failed restarts (target 0)`]
      : []
    if (longest >= o.deadline) misses.push(`a restart took ${fmtMs(longest)} ms: it waited for its whole drain deadline (${o.deadline} ms) for requests of the old generation that never ended`)
    return { title: '3. Restart under load', params, body, misses }
  } finally {
    await child.close()
  }
}
