// `fastify-pool upgrade` with --workers: the primary binds the listening
// sockets and hands them to its workers and to its successor, which forks
// its own workers on them; the old workers hand off once every new one is
// ready. Real processes on 127.0.0.1, load from hey (Debian's).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, freePort, get, logLines, run } from './fixtures/cli.ts'
import { keepAliveLoad } from './fixtures/load.ts'
import { assertAllServed, heyUntil, NO_HEY, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { pids } from './fixtures/cluster.ts'

const APP = 'export default async function (app) { app.get(\'/\', async () => ({ pid: process.pid })) }\n'

function poolYaml (ports: { public: number, admin: number }, extra = ''): string {
  return `workers: 2
servers:
  - name: public
    listen: 127.0.0.1:${ports.public}
  - name: admin
    listen: 127.0.0.1:${ports.admin}
handlers:
  default: ./app.mjs
control:
  listener: admin
metrics:
  listener: admin
defaults:
  stopTimeout: 5000
  logLevel: warn
${extra}`
}

// The primary's last line: its workers have stopped and it exits.
const HANDED_OVER = /"msg":"pool handed over: every worker stopped; exiting"/g

// Both workers, however the kernel spreads the connections (at most 300 requests).
const answeringPids = (port: number): Promise<Set<number>> => pids(port, 300, 2)

test('--workers 2: 5 upgrades under load (keep-alive and not), by the command and by SIGUSR2: no failed request, and afterwards only the last primary and its two workers run', { skip: NO_HEY, timeout: 180_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const pool = await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP })
  const first = pool.pid()
  const primaries = [first]
  let finish!: () => void
  const upgrading = new Promise<void>(resolve => { finish = resolve })
  const loads = [
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading),
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading, ['-disable-keepalive'])
  ]
  try {
    for (let i = 1; i <= 5; i++) {
      if (i % 2 === 1) {
        // Through the control API: a worker answers it, and asks its primary.
        const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
        const { code } = await cmd.exited
        assert.equal(code, 0, cmd.stdout() + cmd.stderr())
        assert.match(cmd.stdout(), /^upgraded: process \d+ \(Node v[\d.]+\) serves every listener; process \d+ drains and exits\n$/)
      } else {
        process.kill(pool.pid(), 'SIGUSR2')
      }
      await pool.handOvers(i, 30_000, HANDED_OVER)
      assert.notEqual(pool.pid(), primaries.at(-1), 'the pid file names the new primary')
      primaries.push(pool.pid())
    }
  } finally {
    finish()
  }
  const results = await Promise.all(loads)
  assertAllServed(results)
  assert.equal(new Set(primaries).size, 6, 'six primaries in turn')

  // No orphan: of every process that logged (primaries and workers), the last primary and its two workers run.
  const last = pool.pid()
  const running = await survivors(pool.pids(), 3)
  assert.equal(running.length, 3, `running: ${running.join(', ')}`)
  assert.ok(running.includes(last))
  const workers = running.filter(pid => pid !== last)
  assert.deepEqual([...await answeringPids(p.public)].sort(), workers.sort(), 'the last primary\'s workers serve')
  assert.equal((await pool.child.exited).code, 0, 'the first primary exited 0')

  // ps names the new primary and its workers; the counter counts the 5 upgrades.
  const ps = run(t, [BIN, 'ps', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await ps.exited).code, 0, ps.stderr())
  const processes = ps.stdout().trim().split('\n\n')[1] ?? ''
  assert.match(processes, new RegExp(`^primary\\s+${last}\\s`, 'm'))
  for (const pid of workers) assert.match(processes, new RegExp(`^worker \\d+\\s+${pid}\\s`, 'm'))
  const metrics = (await get(`http://127.0.0.1:${p.admin}/metrics`)).body
  assert.match(metrics, /^fastify_pool_upgrades_total\{result="ok"\} 5$/m)
  const tookOver = logLines(pool.child.stdout()).filter(l => typeof l.msg === 'string' && /^serving every listener: process \d+ hands over to this one$/.test(l.msg))
  assert.deepEqual(tookOver.map(l => l.previous), primaries.slice(0, -1))

  process.kill(last, 'SIGTERM')
  assert.deepEqual(await survivors(running, 0), [], 'a SIGTERM to the primary stops it and its workers')
})

test('--workers 2: a successor with an invalid file, or one whose worker cannot start, is stopped; the old primary and its workers serve on with no failed request', { timeout: 120_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const yaml = poolYaml(p)
  const pool = await startUpgradable(t, { 'pool.yaml': yaml, 'app.mjs': APP })
  const primary = pool.pid()
  const workers = await answeringPids(p.public)
  assert.equal(workers.size, 2)
  const load = keepAliveLoad(`http://127.0.0.1:${p.public}/`, 6)
  t.after(() => load.stop())
  const attempt = async (): Promise<{ code: number | null, out: string }> => {
    const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
    const { code } = await cmd.exited
    return { code, out: cmd.stdout() + cmd.stderr() }
  }
  writeFileSync(join(pool.dir, 'pool.yaml'), yaml.replace('workers: 2', 'workers: many'))
  const invalid = await attempt()
  assert.equal(invalid.code, 1)
  assert.match(invalid.out, /^pool\.yaml: upgrade failed, the running process serves on unchanged: the successor could not start: .*workers/m)
  assert.equal(invalid.out.trim().split('\n').length, 1, `one line: ${invalid.out}`)

  // The handler throws in each new worker as its pool starts (the primary's check loads it, it does not run it).
  writeFileSync(join(pool.dir, 'throws.mjs'), 'export default async function () { throw new Error(\'no database\') }\n')
  writeFileSync(join(pool.dir, 'pool.yaml'), yaml.replace('default: ./app.mjs', 'default: ./throws.mjs'))
  const throwing = await attempt()
  assert.equal(throwing.code, 1)
  assert.match(throwing.out, /upgrade failed, the running process serves on unchanged: the successor could not start: a worker could not start its pool/)

  assert.equal(pool.pid(), primary, 'the pid file still names the first primary')
  assert.deepEqual([...await answeringPids(p.public)].sort(), [...workers].sort(), 'the same workers serve')
  const result = await load.stop()
  assert.ok(result.total > 50, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no failed request')
  assert.equal(result.non2xx, 0)
  // Each failed successor (a primary, and the workers of the second) is gone.
  assert.deepEqual((await survivors(pool.pids(), 3)).sort(), [primary, ...workers].sort())
  const metrics = (await get(`http://127.0.0.1:${p.admin}/metrics`)).body
  assert.match(metrics, /^fastify_pool_upgrades_total\{result="failed"\} 2$/m)
  pool.child.proc.kill('SIGTERM')
  assert.equal((await pool.child.exited).code, 0)
})

test('--workers 2: an upgrade to a file without one of the listeners closes that port (no socket is left queueing connections nobody accepts); the others serve on', { timeout: 60_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const extra = await freePort()
  const yaml = poolYaml(p)
  const withExtra = yaml.replace('  - name: admin\n', `  - name: extra\n    listen: 127.0.0.1:${extra}\n  - name: admin\n`)
  const pool = await startUpgradable(t, { 'pool.yaml': withExtra, 'app.mjs': APP })
  assert.equal((await get(`http://127.0.0.1:${extra}/`)).status, 200)
  writeFileSync(join(pool.dir, 'pool.yaml'), yaml)
  const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await cmd.exited).code, 0, cmd.stdout() + cmd.stderr())
  await pool.handOvers(1, 30_000, HANDED_OVER)
  assert.equal((await pool.child.exited).code, 0, 'the old primary exited')
  assert.match(pool.child.stdout(), /"msg":"closed the sockets the previous process served that this configuration has no listener for"/)
  await assert.rejects(get(`http://127.0.0.1:${extra}/`), { code: 'ECONNREFUSED' })
  assert.equal((await get(`http://127.0.0.1:${p.public}/`)).status, 200)
  process.kill(pool.pid(), 'SIGTERM')
  assert.deepEqual(await survivors(pool.pids(), 0), [])
})

test('--workers 2 without Node\'s server handles (FASTIFY_POOL_NODE_INTERNALS=off): the workers share the port through node:cluster, and an upgrade is refused with the reason', { timeout: 60_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const dir = (await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP }, [], undefined, { FASTIFY_POOL_NODE_INTERNALS: 'off' }))
  const workers = await answeringPids(p.public)
  assert.equal(workers.size, 2, 'both workers serve (round-robin through the primary)')
  const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: dir.dir })
  assert.equal((await cmd.exited).code, 1)
  assert.match(cmd.stderr(), /upgrade failed, the running process serves on unchanged: the workers share their ports through node:cluster's primary/)
  process.kill(dir.pid(), 'SIGUSR2')
  await dir.child.waitFor(out => /upgrade refused: the workers share their ports through node:cluster's primary/.test(out))
  assert.deepEqual([...await answeringPids(p.public)].sort(), [...workers].sort(), 'the same workers serve')
  dir.child.proc.kill('SIGTERM')
  assert.equal((await dir.child.exited).code, 0)
})
