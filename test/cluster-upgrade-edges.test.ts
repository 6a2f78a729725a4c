// `fastify-pool upgrade` with --workers at its edges: a new file without one
// of the listeners (its port closes), and Node without server handles (the
// upgrade is refused with the reason). Real processes on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { APP, clusterPoolYaml, HANDED_OVER, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { BIN, freePort, get, run } from './fixtures/cli.ts'
import { pids } from './fixtures/cluster.ts'

// Both workers, however the kernel spreads the connections (at most 300 requests).
const answeringPids = (port: number): Promise<Set<number>> => pids(port, 300, 2)

test('--workers 2: an upgrade to a file without one of the listeners closes that port (no socket is left queueing connections nobody accepts); the others serve on', { timeout: 60_000 }, async (t) => {
  const p = { public: await freePort(), admin: await freePort() }
  const extra = await freePort()
  const yaml = clusterPoolYaml(p)
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
  const dir = (await startUpgradable(t, { 'pool.yaml': clusterPoolYaml(p), 'app.mjs': APP }, [], undefined, { FASTIFY_POOL_NODE_INTERNALS: 'off' }))
  const workers = await answeringPids(p.public)
  assert.equal(workers.size, 2, 'both workers serve (round-robin through the primary)')
  const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: dir.dir })
  assert.equal((await cmd.exited).code, 1)
  assert.match(cmd.stderr(), /upgrade refused, the running process serves on unchanged: the workers share their ports through node:cluster's primary/)
  process.kill(dir.pid(), 'SIGUSR2')
  await dir.child.waitFor(out => /upgrade refused: the workers share their ports through node:cluster's primary/.test(out))
  assert.deepEqual([...await answeringPids(p.public)].sort(), [...workers].sort(), 'the same workers serve')
  dir.child.proc.kill('SIGTERM')
  assert.equal((await dir.child.exited).code, 0)
})
