// 8. Upgrade under load: `fastify-pool start` on a pool file, loaded by hey,
// steady and while its process is replaced back to back (SIGUSR2 to the pid
// its --pid-file names). Each upgrade starts a new process that inherits the
// listening sockets; no request may fail. Also: the time from the request to
// the new process being ready, and to the old process's exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmtInt, fmtMs, fmtRatio, median, table, verdict } from './stats.ts'
import { freePort } from '../test/fixtures/cli.ts'

const BIN = fileURLToPath(new URL('../packages/fastify-pool-cli/bin/fastify-pool.js', import.meta.url))

interface HeyRun { rps: number, ok: number, failed: number }

export async function upgrade (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.upgrade
  const params = `fastify-pool start (one listener, Node ${process.version}), one process and then --workers 2, hey -c ${o.connections} with keep-alive, ${o.rounds} round(s) of (steady ${o.duration} s, ${o.upgrades} upgrades back to back); the next upgrade is asked once the replaced process (with workers: the primary, once its workers have stopped) has exited`
  log(`\n## 8. Upgrade under load\n${params}`)
  if (spawnSync('hey', ['-n', '1', 'http://127.0.0.1:1/'], { stdio: 'ignore' }).error !== undefined) {
    return { title: '8. Upgrade under load', params, body: 'Not run: hey is missing (apt-get install hey).', misses: ['upgrade: not run (no hey)'] }
  }
  const single = await upgrades(options, log, 1)
  const workers = await upgrades(options, log, 2)
  const body = [
    table(['processes', 'load', 'req/s', 'req/s ÷ steady', 'upgrades', 'failed requests', 'failed = 0'], [...single.rows, ...workers.rows]),
    '',
    table(['processes', 'from SIGUSR2 to', 'median ms', 'max ms'], [...single.times, ...workers.times]),
    '',
    'Failed requests count connection errors and non-2xx answers seen by hey. The time to ready is mostly the new process starting Node and loading the command and its modules (here from TypeScript sources through tsx; the published package runs compiled JavaScript); with workers, the new primary and then its workers start, one after the other on these 2 cores.'
  ].join('\n')
  return { title: '8. Upgrade under load', params, body, misses: [...single.misses, ...workers.misses] }
}

/** One pool (`workers` 1: one process; else a primary and its workers), steady and upgraded under hey. */
async function upgrades (options: BenchOptions, log: Log, workers: number): Promise<{ rows: string[][], times: string[][], misses: string[] }> {
  const o = options.upgrade
  const who = workers === 1 ? 'one process' : `${workers} workers`
  // The replaced process's last line: a pool's, or the primary's once its workers have stopped.
  const gone = workers === 1 ? '"msg":"pool stopped"' : '"msg":"pool handed over: every worker stopped; exiting"'
  log(`  ${who}`)
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-bench-upgrade-'))
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'app.mjs'), 'export default async function (app) { app.get(\'/\', async () => \'hello world\') }\n')
  writeFileSync(join(dir, 'pool.yaml'), `workers: ${workers}
servers:
  - { name: public, listen: 127.0.0.1:${port} }
  - { name: admin, listen: 127.0.0.1:${admin} }
handlers:
  default: ./app.mjs
control:
  listener: admin
defaults:
  logLevel: warn
  stopTimeout: 5000
`)
  const pidFile = join(dir, 'pool.pid')
  const args = [BIN, 'start', '--json', '--pid-file', pidFile, 'pool.yaml']
  const proc = options.pin
    ? spawn('taskset', ['-c', '1', process.execPath, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  const output = watchOutput(proc)
  const url = `http://127.0.0.1:${port}/`
  try {
    await output.until(out => out.includes(workers === 1 ? '"msg":"pool started"' : `"msg":"pool started in ${workers} workers"`), 30_000)
    log('  warm-up')
    await hey(url, o.connections, 2)
    const steady: HeyRun[] = []
    const upgrading: HeyRun[] = []
    const ready: number[] = []
    const exit: number[] = []
    let done = 0
    for (let round = 0; round < o.rounds; round++) {
      const s = await hey(url, o.connections, o.duration)
      steady.push(s)
      log(`  steady     ${fmtInt(s.rps).padStart(8)} req/s  failed ${s.failed}`)
      const running = heyUntilStopped(url, o.connections)
      for (let i = 0; i < o.upgrades; i++) {
        const asked = performance.now()
        const handed = count(output.text(), 'hands over and exits')
        const stopped = count(output.text(), gone)
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGUSR2')
        await output.until(out => count(out, 'hands over and exits') > handed, 60_000)
        ready.push(performance.now() - asked)
        await output.until(out => count(out, gone) > stopped, 60_000)
        exit.push(performance.now() - asked)
        done++
      }
      const u = await running.stop()
      upgrading.push(u)
      log(`  upgrading  ${fmtInt(u.rps).padStart(8)} req/s  failed ${u.failed}  (${o.upgrades} upgrades)`)
    }
    const failed = (runs: HeyRun[]): number => runs.reduce((n, r) => n + r.failed, 0)
    const ratio = median(upgrading.map((u, i) => u.rps / (steady[i] as HeyRun).rps))
    const rows = [
      [who, 'steady, no upgrade', fmtInt(median(steady.map(r => r.rps))), '1.000', '0', String(failed(steady)), verdict(failed(steady) === 0)],
      [who, 'upgrading back to back', fmtInt(median(upgrading.map(r => r.rps))), fmtRatio(ratio), String(done), String(failed(upgrading)), verdict(failed(upgrading) === 0)]
    ]
    const times = [
      [who, 'the new process ready (every listener up)', fmtMs(median(ready)), fmtMs(Math.max(...ready))],
      [who, 'the old process stopped (drained, about to exit)', fmtMs(median(exit)), fmtMs(Math.max(...exit))]
    ]
    const misses = failed(upgrading) + failed(steady) > 0 ? [`upgrade under load (${who}): ${failed(upgrading)} failed requests while upgrading, ${failed(steady)} steady (target 0)`] : []
    return { rows, times, misses }
  } finally {
    // The serving process is the last successor, not `proc`: stop it by its pid.
    const last = workers === 1 ? '"msg":"pool stopped"' : 'every worker stopped; exiting'
    const countAtEnd = count(output.text(), last)
    try { process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM') } catch {}
    proc.kill('SIGTERM')
    await output.until(out => count(out, last) > countAtEnd, 10_000).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
}

function count (text: string, what: string): number { return text.split(what).length - 1 }

function watchOutput (proc: ChildProcess): { text: () => string, until: (test: (out: string) => boolean, ms: number) => Promise<void> } {
  let out = ''
  const waiters = new Set<() => void>()
  const add = (c: Buffer): void => { out += c.toString(); for (const w of waiters) w() }
  proc.stdout?.on('data', add)
  proc.stderr?.on('data', add)
  return {
    text: () => out,
    until: (test, ms) => new Promise((resolve, reject) => {
      const check = (): void => { if (test(out)) { clearTimeout(timer); waiters.delete(check); resolve() } }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out waiting for the pool:\n${out.slice(-2000)}`)) }, ms)
      waiters.add(check)
      check()
    })
  }
}

function parseHey (text: string): HeyRun {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? 0)
  const status = /Status code distribution:\n([\s\S]*?)\n\n/.exec(text)?.[1] ?? ''
  const ok = Number(/\[200\]\s+(\d+)/.exec(status)?.[1] ?? 0)
  const other = [...status.matchAll(/\[(\d+)\]\s+(\d+)/g)].filter(m => m[1] !== '200').reduce((n, m) => n + Number(m[2]), 0)
  const errors = [...(/Error distribution:\n([\s\S]*?)(?:\n\n|$)/.exec(text)?.[1] ?? '').matchAll(/\[(\d+)\]/g)].reduce((n, m) => n + Number(m[1]), 0)
  return { rps, ok, failed: other + errors }
}

function hey (url: string, connections: number, seconds: number): Promise<HeyRun> {
  return heyUntilStopped(url, connections, seconds).done
}

/** hey against loopback for at most `seconds` (default 120), or until stop(). */
function heyUntilStopped (url: string, connections: number, seconds = 120): { stop: () => Promise<HeyRun>, done: Promise<HeyRun> } {
  if (new URL(url).hostname !== '127.0.0.1') throw new Error('load is only sent to loopback')
  const proc = spawn('hey', ['-z', `${seconds}s`, '-c', String(connections), url], { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  proc.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const done = new Promise<HeyRun>(resolve => proc.once('exit', () => resolve(parseHey(out))))
  return { done, stop: async () => { proc.kill('SIGINT'); return await done } }
}
