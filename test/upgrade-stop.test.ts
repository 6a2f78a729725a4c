// `fastify-pool upgrade` and a stop: a stop during an upgrade takes the
// successor still starting with it; without the descriptor field an upgrade
// is refused; a --pid-file nowhere is a usage error. Real processes on
// 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { APP, poolYaml, ports, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { BIN, get, run } from './fixtures/cli.ts'

test('a stop during an upgrade takes the successor still starting with it; without the descriptor field the upgrade is refused; a --pid-file nowhere is a usage error', { timeout: 60_000 }, async (t) => {
  const p = await ports()
  const pool = await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP })
  const pid = pool.pid()
  // The successor reads app.mjs afresh: make it hang there, then stop the old process.
  writeFileSync(join(pool.dir, 'app.mjs'), 'export default async function () { await new Promise(() => {}) }\n')
  const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
  await pool.child.waitFor(out => /upgrade: starting a successor/.test(out))
  process.kill(pid, 'SIGTERM')
  assert.equal((await pool.child.exited).code, 0)
  assert.equal((await cmd.exited).code, 1)
  assert.deepEqual(await survivors(pool.pids(), 0), [], `no process outlives the stop: ${pool.child.stdout().slice(-1500)}`)

  const off = await ports()
  const fallback = run(t, [BIN, 'start', '--json', 'pool.yaml'], { cwd: pool.dir, env: { FASTIFY_POOL_NODE_INTERNALS: 'off' } })
  writeFileSync(join(pool.dir, 'pool.yaml'), poolYaml(off))
  writeFileSync(join(pool.dir, 'app.mjs'), APP)
  await fallback.waitFor(out => /"msg":"pool started"/.test(out))
  const refused = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await refused.exited).code, 1)
  assert.match(refused.stderr(), /does not tell a server's descriptor \(server\._handle\.fd\): the sockets cannot be handed over/)
  assert.equal((JSON.parse((await get(`http://127.0.0.1:${off.public}/`)).body) as { pid: number }).pid, fallback.proc.pid)

  const nowhere = run(t, [BIN, 'start', '--pid-file', join(pool.dir, 'missing', 'pool.pid'), 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await nowhere.exited).code, 2)
  assert.match(nowhere.stderr(), /--pid-file .*the folder .*missing does not exist/)
})
