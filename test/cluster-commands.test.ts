// With --workers a command means the whole pool: the pid file names the
// primary whatever happens to the workers (a roll, a replacement), and
// SIGTERM to that pid ends every process; `stop`, `restart` and the control
// API's `start` act on the listener in every worker, whichever worker the
// request reached, and answer for each. Real processes on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, get, logLines, run } from './fixtures/cli.ts'
import { send } from './fixtures/lifecycle.ts'
import { pids, project, started, workerPids } from './fixtures/cluster.ts'
import { alive, survivors } from './fixtures/upgrade.ts'

const pidIn = (file: string): number => Number(readFileSync(file, 'utf8').trim())

test('--workers 2 --pid-file: the file names the primary after a roll and after a worker\'s replacement; SIGTERM to that pid ends every process and removes the file', async (t) => {
  const p = await project(t)
  const pidFile = join(p.dir, 'pool.pid')
  const child = await started(t, p, ['--pid-file', pidFile])
  const primary = child.proc.pid as number
  assert.equal(pidIn(pidFile), primary, 'written by the primary')
  const first = workerPids(child)

  // A roll: every worker replaced, one at a time.
  const reload = run(t, [BIN, 'reload', 'pool.yaml'], { cwd: p.dir })
  assert.equal((await reload.exited).code, 0, reload.stdout() + reload.stderr())
  await child.waitFor(out => /"msg":"rolling reload done/.test(out), 40_000)
  assert.equal(pidIn(pidFile), primary, 'not a new worker\'s pid after the roll')

  // A replacement: a worker killed, another started.
  const rolled = [...await pids(p.port)]
  process.kill(rolled[0] as number, 'SIGKILL')
  await child.waitFor(out => /"msg":"a worker died; starting another"/.test(out))
  // Two at the start, two of the roll, and the replacement.
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 5, 20_000)
  assert.equal(pidIn(pidFile), primary, 'not the replacement\'s pid either')
  assert.equal(alive(primary), true)

  const everyone = new Set([primary, ...first, ...rolled, ...await pids(p.port)])
  process.kill(pidIn(pidFile), 'SIGTERM')
  assert.equal((await child.exited).code, 0, child.stdout())
  assert.deepEqual(await survivors(everyone, 0), [], 'no worker outlives the primary')
  assert.throws(() => readFileSync(pidFile), { code: 'ENOENT' }, 'the primary removed its pid file')
})

test('--workers 2: stop, restart and start of one listener act in every worker, through whichever worker took the request, with one line per worker', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const workers = workerPids(child)
  assert.equal(workers.length, 2)
  const command = async (args: string[]): Promise<{ code: number | null, out: string }> => {
    const cmd = run(t, [BIN, ...args, 'pool.yaml'], { cwd: p.dir })
    const { code } = await cmd.exited
    return { code, out: cmd.stdout() + cmd.stderr() }
  }
  const states = async (): Promise<string[]> => {
    const ps = await command(['ps', '--json'])
    const body = JSON.parse(ps.out) as { workers: Array<{ pid: number, listeners: Array<{ name: string, state: string, generation: number }> }> }
    return body.workers.map(w => w.listeners.filter(l => l.name === 'public').map(l => `${l.state} ${l.generation}`).join()).sort()
  }

  const stop = await command(['stop', 'public'])
  assert.equal(stop.code, 0, stop.out)
  const lines = stop.out.trim().split('\n')
  assert.equal(lines.length, 2, stop.out)
  for (const line of lines) assert.match(line, /^worker \d+: public \(127\.0\.0\.1:\d+\): stopped$/)
  assert.deepEqual((await states()).map(s => s.split(' ')[0]), ['stopped', 'stopped'], 'stopped in both workers')
  await assert.rejects(get(`http://127.0.0.1:${p.port}/`), { code: 'ECONNREFUSED' }, 'no worker accepts on it, and the primary does not listen')

  // A worker that dies now is replaced by one that starts every listener of the file: on the primary's
  // socket, bound again for it (not through node:cluster, which would hold the port against a later start).
  process.kill(workers[0] as number, 'SIGKILL')
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 3, 20_000)
  assert.deepEqual(await states().then(s => s.map(x => x.split(' ')[0]).sort()), ['running', 'stopped'], 'the replacement serves it, the other worker has it stopped')
  const replacement = [...await pids(p.port, 10)]
  assert.equal(replacement.length, 1)
  assert.ok(!workers.includes(replacement[0] as number))
  workers.splice(0, 1, replacement[0] as number)

  // The control API's start (the status page's button): every worker again.
  const start = await send(`http://127.0.0.1:${p.admin}/pool/start?name=public`, { method: 'POST' })
  assert.equal(start.status, 200, start.body)
  const answer = JSON.parse(start.body) as { ok: boolean, workers: Array<{ pid: number, ok: boolean }>, results: Array<{ worker: number, state: string }> }
  assert.equal(answer.ok, true)
  assert.deepEqual(answer.workers.map(w => w.pid).sort(), [...workers].sort())
  assert.deepEqual(answer.results.map(r => r.state), ['running', 'running'])
  const afterStart = await states()
  assert.deepEqual(afterStart.map(s => s.split(' ')[0]), ['running', 'running'])
  const generations = afterStart.map(s => Number(s.split(' ')[1]))
  assert.deepEqual([...await pids(p.port, 300, 2)].sort(), [...workers].sort(), 'both workers serve it again')

  const restart = await command(['restart', 'public'])
  assert.equal(restart.code, 0, restart.out)
  assert.equal(restart.out.trim().split('\n').filter(l => /^worker \d+: public \(127\.0\.0\.1:\d+\): running, generation \d+$/.test(l)).length, 2, restart.out)
  assert.deepEqual(await states(), generations.map(g => `running ${g + 1}`), 'a new generation in both workers')

  const none = await command(['restart', 'nothing-*'])
  assert.equal(none.code, 5, none.out)
  assert.match(none.out, /no listener matches name=nothing-\* \(names: public, admin\)/)
  const control = await command(['stop', 'admin'])
  assert.equal(control.code, 1, control.out)
  assert.match(control.out, /serves this control API/)

  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
