// `fastify-pool start --workers 2` when things go wrong: dead workers, crash loops,
// unsupported listeners, runWorkers() from a script, and reload through the control API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, ROOT, get, logLines, run, tempDir } from './fixtures/cli.ts'
import { ROUTES, pids, project, started, workerPids } from './fixtures/cluster.ts'

test('kill -9 of a worker: it is replaced and the port keeps answering', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const [victim, other] = workerPids(child) as [number, number]
  process.kill(victim, 'SIGKILL')
  await child.waitFor(out => /"msg":"a worker died; starting another"/.test(out))
  // The other worker answers meanwhile.
  assert.equal((JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { pid: number }).pid, other)
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 3)
  const answering = await pids(p.port, 300, 2)
  assert.equal(answering.size, 2)
  assert.ok(!answering.has(victim))
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('workers that keep dying: the primary gives up with a clear error and exit 1', async (t) => {
  const p = await project(t)
  // Each worker dies half a second after its listeners are built (its pool is up and it said so by then).
  writeFileSync(join(p.dir, 'routes.js'), ROUTES('v1').replace('export default async function (app) {', 'export default async function (app) {\n  app.addHook(\'onReady\', async () => { setTimeout(() => process.exit(3), 500).unref() })'))
  const child = run(t, [BIN, 'start', '--json'], { cwd: p.dir })
  const { code } = await child.exited
  assert.equal(code, 1)
  assert.match(child.stdout(), /workers died 5 times within 60 s: giving up/)
})

test('a unix socket listener cannot be shared by workers: a clear error, nothing started', async (t) => {
  const dir = tempDir(t, 'fastify-pool-cluster-')
  writeFileSync(join(dir, 'pool.yaml'), `workers: 2\nservers:\n  - name: sock\n    listen: unix:${join(dir, 'pool.sock')}\n`)
  const child = run(t, [BIN, 'start', '--json'], { cwd: dir })
  const { code } = await child.exited
  assert.equal(code, 1)
  const refusal = JSON.parse(child.stderr().trim()) as { code: string, message: string }
  assert.equal(refusal.code, 'FST_POOL_WORKERS')
  assert.match(refusal.message, /listener "sock" listens on unix:.*a unix socket cannot be shared by several workers/)
  const usage = run(t, [BIN, 'start', '--workers', 'two'], { cwd: dir })
  assert.equal((await usage.exited).code, 2)
  assert.match(usage.stderr(), /start: --workers must be a whole number of processes >= 1, or "auto" for one per core \(got "/)
})

test('runWorkers() from a script: the same two workers, the script run again in each', async (t) => {
  const p = await project(t)
  const entry = join(ROOT, 'packages/fastify-pool-cli/src/index.ts')
  writeFileSync(join(p.dir, 'main.mjs'), `import { runWorkers } from ${JSON.stringify(entry)}\nprocess.exitCode = await runWorkers({ file: 'pool.yaml', workers: 2 })\n`)
  const child = run(t, ['--conditions=source', '--import', import.meta.resolve('tsx'), join(p.dir, 'main.mjs')], { cwd: p.dir })
  await child.waitFor(out => /"msg":"pool started in 2 workers"/.test(out))
  assert.equal((await pids(p.port, 300, 2)).size, 2)
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('fastify-pool reload against workers rolls them all, as SIGHUP does', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const before = workerPids(child)
  writeFileSync(join(p.dir, 'routes.js'), ROUTES('v3'))
  const reload = run(t, [BIN, 'reload'], { cwd: p.dir })
  const { code } = await reload.exited
  assert.equal(code, 0, reload.stderr())
  await child.waitFor(out => /"msg":"rolling reload done/.test(out), 40_000)
  const seen = new Map<number, string>()
  for (let i = 0; i < 30; i++) {
    const body = JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { pid: number, version: string }
    seen.set(body.pid, body.version)
  }
  assert.deepEqual([...new Set(seen.values())], ['v3'])
  for (const pid of seen.keys()) assert.ok(!before.includes(pid))
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
