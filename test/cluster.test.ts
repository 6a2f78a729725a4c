// `fastify-pool start --workers 2`: node:cluster workers sharing the
// listening sockets, the primary owning the signals. Child processes on real
// sockets on 127.0.0.1; every process is killed at the end.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, ROOT, freePort, get, logLines, run, tempDir, type Child } from './fixtures/cli.ts'
import { keepAliveLoad } from './fixtures/load.ts'

const ROUTES = (version: string): string => `
export default async function (app) {
  app.get('/', async () => ({ pid: process.pid, version: '${version}' }))
  app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 800)); return { pid: process.pid, done: true } })
}
`

interface Project { dir: string, port: number, admin: number }

async function project (t: TestContext, extra = ''): Promise<Project> {
  const dir = tempDir(t, 'fastify-pool-cluster-')
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'routes.js'), ROUTES('v1'))
  writeFileSync(join(dir, 'pool.yaml'), [
    'workers: 2',
    'defaults:',
    '  stopTimeout: 8000',
    'metrics: { listener: admin }',
    'control: { listener: admin }',
    'handlers:',
    '  main: ./routes.js',
    'servers:',
    '  - name: public',
    `    listen: 127.0.0.1:${port}`,
    '    handler: main',
    '  - name: admin',
    `    listen: 127.0.0.1:${admin}`,
    '    handler: main',
    '    stopOrder: 1',
    extra
  ].join('\n'))
  return { dir, port, admin }
}

async function started (t: TestContext, p: Project, args: string[] = []): Promise<Child> {
  const child = run(t, [BIN, 'start', '--json', ...args], { cwd: p.dir })
  await child.waitFor(out => /"msg":"pool started in 2 workers"/.test(out))
  return child
}

/** The pids that answer `/` on new connections, over `n` requests. */
async function pids (port: number, n = 40): Promise<Set<number>> {
  const seen = new Set<number>()
  for (let i = 0; i < n; i++) seen.add((JSON.parse((await get(`http://127.0.0.1:${port}/`)).body) as { pid: number }).pid)
  return seen
}

function workerPids (child: Child): number[] {
  const entry = logLines(child.stdout()).findLast(l => l.msg === 'pool started in 2 workers')
  return ((entry?.workers ?? []) as Array<{ pid: number }>).map(w => w.pid)
}

test('--workers 2: two processes serve the same port; ps and the metrics see both', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const answering = await pids(p.port)
  assert.equal(answering.size, 2, `pids that answered: ${[...answering].join(', ')}`)
  assert.deepEqual([...answering].sort(), workerPids(child).sort())

  const ps = run(t, [BIN, 'ps'], { cwd: p.dir })
  assert.equal((await ps.exited).code, 0, ps.stderr())
  const rows = ps.stdout().trim().split('\n')
  assert.match(rows[0] ?? '', /^WORKER\s+NAME\s+STATE/)
  assert.equal(rows.length, 1 + 2 * 2, 'one row per worker and listener')
  const metrics = (await get(`http://127.0.0.1:${p.admin}/metrics`)).body
  const count = /http_request_duration_seconds_count\{listener="public",method="GET",route="\/",status_code="200"\} (\d+)/.exec(metrics)?.[1]
  assert.equal(Number(count), 40, 'the requests of both workers, summed')
  assert.match(metrics, /fastify_pool_listener_up\{listener="public"\} 1/)

  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('SIGTERM: every worker drains under the one deadline; an in-flight request completes; exit 0', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const slow = get(`http://127.0.0.1:${p.port}/slow`)
  await child.waitFor(out => /"url":"\/slow"/.test(out))
  const began = Date.now()
  child.proc.kill('SIGTERM')
  const reply = await slow
  assert.equal(reply.status, 200)
  assert.equal((JSON.parse(reply.body) as { done: boolean }).done, true)
  const { code } = await child.exited
  assert.equal(code, 0)
  assert.ok(Date.now() - began < 8000, 'within stopTimeout')
  await assert.rejects(get(`http://127.0.0.1:${p.port}/`), { code: 'ECONNREFUSED' })
})

test('SIGHUP rolls the workers one at a time under keep-alive load: no failed request, every worker on the new code', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const before = workerPids(child)
  // A client that honours Connection: close, as browsers, undici and load balancers do.
  const load = keepAliveLoad(`http://127.0.0.1:${p.port}/`, 6)
  t.after(() => load.stop())
  writeFileSync(join(p.dir, 'routes.js'), ROUTES('v2'))
  child.proc.kill('SIGHUP')
  await child.waitFor(out => /"msg":"rolling reload done/.test(out), 40_000)
  const result = await load.stop()
  assert.ok(result.total > 100, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no failed request')
  assert.equal(result.non2xx, 0)
  const versions = new Set<string>()
  const now = new Set<number>()
  for (let i = 0; i < 30; i++) {
    const body = JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { pid: number, version: string }
    versions.add(body.version)
    now.add(body.pid)
  }
  assert.deepEqual([...versions], ['v2'])
  assert.equal(now.size, 2)
  for (const pid of now) assert.ok(!before.includes(pid), 'every worker was replaced')
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('kill -9 of a worker: it is replaced and the port keeps answering', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const [victim, other] = workerPids(child) as [number, number]
  process.kill(victim, 'SIGKILL')
  await child.waitFor(out => /"msg":"a worker died; starting another"/.test(out))
  // The other worker answers meanwhile.
  assert.equal((JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { pid: number }).pid, other)
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 3)
  const answering = await pids(p.port)
  assert.equal(answering.size, 2)
  assert.ok(!answering.has(victim))
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('workers that keep dying: the primary gives up with a clear error and exit 1', async (t) => {
  const p = await project(t)
  // Each worker dies shortly after its pool is up.
  writeFileSync(join(p.dir, 'routes.js'), `import cluster from 'node:cluster'\n${ROUTES('v1')}\nif (cluster.isWorker) setTimeout(() => process.exit(3), 300).unref()\n`)
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
  assert.match(child.stderr(), /listener "sock" listens on unix:.*a unix socket cannot be shared by several workers/)
  const usage = run(t, [BIN, 'start', '--workers', 'two'], { cwd: dir })
  assert.equal((await usage.exited).code, 2)
  assert.match(usage.stderr(), /--workers takes a whole number >= 1 or "auto"/)
})

test('runWorkers() from a script: the same two workers, the script run again in each', async (t) => {
  const p = await project(t)
  const entry = join(ROOT, 'packages/fastify-pool-cli/src/index.ts')
  writeFileSync(join(p.dir, 'main.mjs'), `import { runWorkers } from ${JSON.stringify(entry)}\nprocess.exitCode = await runWorkers({ file: 'pool.yaml', workers: 2 })\n`)
  const child = run(t, ['--conditions=source', '--import', import.meta.resolve('tsx'), join(p.dir, 'main.mjs')], { cwd: p.dir })
  await child.waitFor(out => /"msg":"pool started in 2 workers"/.test(out))
  assert.equal((await pids(p.port)).size, 2)
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
