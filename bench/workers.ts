// 6. Workers: requests per second of `fastify-pool start --workers 2` against
// `--workers 1`, the same pool file, the same route. On a 2-core machine the
// load generator runs on the same cores as the workers, so the second worker
// competes with it: the figure is a floor, not what two free cores give.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { load, loadWrk, wrkAvailable, type LoadResult } from './load.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmt, fmtInt, fmtMs, fmtRatio, median, table } from './stats.ts'
import { freePort } from '../test/fixtures/cli.ts'

const BIN = fileURLToPath(new URL('../packages/fastify-pool-cli/bin/fastify-pool.js', import.meta.url))

/** Start the command; resolves once every worker serves. Unpinned: the workers may use every core. */
async function startPool (file: string, workers: number): Promise<ChildProcess> {
  const args = [BIN, 'start', '--json', '--workers', String(workers), file]
  const taskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).error === undefined
  const child = taskset
    ? spawn('taskset', ['-c', `0-${cpus().length - 1}`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const wanted = workers === 1 ? '"msg":"pool started"' : `"msg":"pool started in ${workers} workers"`
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`the pool exited (${code ?? 'signal'}):\n${out}`)) }
    const onData = (chunk: string): void => {
      out += chunk
      if (!out.includes(wanted)) return
      clearTimeout(timer)
      // From here on its output is read and dropped, not kept.
      child.stdout?.removeListener('data', onData)
      child.removeListener('exit', onExit)
      child.stdout?.resume()
      resolve()
    }
    const timer = setTimeout(() => reject(new Error(`the pool did not start within 30 s:\n${out}`)), 30_000)
    child.stdout?.setEncoding('utf8').on('data', onData)
    child.once('exit', onExit)
  })
  return child
}

async function stopPool (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

export async function workers (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.workers
  const useWrk = wrkAvailable()
  const params = `${useWrk ? 'wrk -t1 -c100' : `autocannon -c${o.connections} -p${o.pipelining}`} on one listener, ${o.duration} s per run, ${o.rounds} rounds of (1, 2) workers in alternating order, ${o.warmup} s warm-up; ${cpus().length} cores shared by the workers and the load generator`
  log(`\n## 6. Workers\n${params}`)
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-bench-workers-'))
  const runs = new Map<number, LoadResult[]>([[1, []], [2, []]])
  try {
    const port = await freePort()
    writeFileSync(join(dir, 'routes.js'), 'export default async function (app) { app.get(\'/\', async () => ({ hello: \'world\' })) }\n')
    // Request logs off (warn), as for the other suites: the figure is the server's, not pino's.
    writeFileSync(join(dir, 'pool.yaml'), `defaults:\n  logLevel: warn\nhandlers:\n  main: ./routes.js\nservers:\n  - name: web\n    listen: 127.0.0.1:${port}\n    handler: main\n`)
    const url = `http://127.0.0.1:${port}/`
    const run = (seconds: number): Promise<LoadResult> => useWrk
      ? loadWrk(url, { connections: 100, duration: seconds })
      : load(url, { connections: o.connections, pipelining: o.pipelining, duration: seconds })
    for (let round = 0; round < o.rounds; round++) {
      for (const n of round % 2 === 0 ? [1, 2] : [2, 1]) {
        const child = await startPool(join(dir, 'pool.yaml'), n)
        try {
          await run(o.warmup)
          const result = await run(o.duration)
          runs.get(n)?.push(result)
          log(`  round ${round + 1} workers ${n}  ${fmtInt(result.rps).padStart(8)} req/s  p50 ${fmtMs(result.p50)} ms  p99 ${fmtMs(result.p99)} ms${result.errors > 0 ? `  errors ${result.errors}` : ''}`)
        } finally {
          await stopPool(child)
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const one = median((runs.get(1) ?? []).map(r => r.rps))
  const rows = [1, 2].map(n => {
    const r = runs.get(n) ?? []
    const rps = median(r.map(x => x.rps))
    return [String(n), fmtInt(rps), fmtRatio(rps / one), fmtMs(median(r.map(x => x.p50))), fmtMs(median(r.map(x => x.p99))), String(r.reduce((s, x) => s + x.errors, 0))]
  })
  const body = [
    table(['workers', 'req/s', '÷ 1 worker', 'p50 ms', 'p99 ms', 'errors'], rows),
    '',
    `The load generator runs on the same ${cpus().length} cores as the workers: with 2 workers the three processes share 2 cores, so the ratio (${fmt(median((runs.get(2) ?? []).map(r => r.rps)) / one, 2)}) is a floor; on a machine where the load comes from elsewhere, each worker has a core of its own.`
  ].join('\n')
  return { title: '6. Workers', params, body, misses: [] }
}
