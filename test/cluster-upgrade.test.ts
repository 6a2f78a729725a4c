// `fastify-pool upgrade` with --workers: the primary binds the listening
// sockets and hands them to its workers and to its successor, which forks
// its own workers on them; the old workers hand off once every new one is
// ready. Real processes on 127.0.0.1, load from hey (Debian's).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { APP, assertAllServed, clusterPoolYaml, HANDED_OVER, heyUntil, NO_HEY, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { BIN, freePort, get, logLines, run } from './fixtures/cli.ts'
import { pids } from './fixtures/cluster.ts'

// Each upgrade replaces three processes (a primary and two workers) and waits for the old ones' drain:
// two (one by the command, one by SIGUSR2) fit the file's 20 s.
const UPGRADES = 2

// Both workers, however the kernel spreads the connections (at most 300 requests).
const answeringPids = (port: number): Promise<Set<number>> => pids(port, 300, 2)

test('--workers 2: 2 upgrades under load (keep-alive and not), by the command and by SIGUSR2: no failed request, and afterwards only the last primary and its two workers run', { skip: NO_HEY, timeout: 180_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const pool = await startUpgradable(t, { 'pool.yaml': clusterPoolYaml(p), 'app.mjs': APP })
  const first = pool.pid()
  const primaries = [first]
  let finish!: () => void
  const upgrading = new Promise<void>(resolve => { finish = resolve })
  const loads = [
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading),
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading, ['-disable-keepalive'])
  ]
  try {
    for (let i = 1; i <= UPGRADES; i++) {
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
  assert.equal(new Set(primaries).size, UPGRADES + 1, 'a new primary for each upgrade')

  // No orphan: of every process that logged (primaries and workers), the last primary and its two workers run.
  const last = pool.pid()
  const running = await survivors(pool.pids(), 3)
  assert.equal(running.length, 3, `running: ${running.join(', ')}`)
  assert.ok(running.includes(last))
  const workers = running.filter(pid => pid !== last)
  assert.deepEqual([...await answeringPids(p.public)].sort(), workers.sort(), 'the last primary\'s workers serve')
  assert.equal((await pool.child.exited).code, 0, 'the first primary exited 0')

  // ps names the new primary and its workers; the counter counts the upgrades.
  const ps = run(t, [BIN, 'ps', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await ps.exited).code, 0, ps.stderr())
  const processes = ps.stdout().trim().split('\n\n')[1] ?? ''
  assert.match(processes, new RegExp(`^primary\\s+${last}\\s`, 'm'))
  for (const pid of workers) assert.match(processes, new RegExp(`^worker \\d+\\s+${pid}\\s`, 'm'))
  const metrics = (await get(`http://127.0.0.1:${p.admin}/metrics`)).body
  assert.match(metrics, new RegExp(`^fastify_pool_upgrades_total\\{result="ok"\\} ${UPGRADES}$`, 'm'))
  const tookOver = logLines(pool.child.stdout()).filter(l => typeof l.msg === 'string' && /^serving every listener: process \d+ hands over to this one$/.test(l.msg))
  assert.deepEqual(tookOver.map(l => l.previous), primaries.slice(0, -1))

  process.kill(last, 'SIGTERM')
  assert.deepEqual(await survivors(running, 0), [], 'a SIGTERM to the primary stops it and its workers')
})
