// `fastify-pool upgrade` with --workers when it cannot, or must not, replace
// the processes: a successor with an invalid file or a worker that cannot
// start, a listener the new file drops, and Node without server handles.
// Real processes on 127.0.0.1 (cluster-upgrade.test.ts: the upgrades that
// succeed, under load).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { APP, clusterPoolYaml, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { BIN, freePort, get, run } from './fixtures/cli.ts'
import { keepAliveLoad } from './fixtures/load.ts'
import { pids } from './fixtures/cluster.ts'

// Both workers, however the kernel spreads the connections (at most 300 requests).
const answeringPids = (port: number): Promise<Set<number>> => pids(port, 300, 2)

test('--workers 2: a successor with an invalid file, or one whose worker cannot start, is stopped; the old primary and its workers serve on with no failed request', { timeout: 120_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const yaml = clusterPoolYaml(p)
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
