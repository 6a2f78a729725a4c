// `fastify-pool start --workers 2`: node:cluster workers sharing the
// listening sockets, the primary owning the signals. Child processes on real
// sockets on 127.0.0.1; every process is killed at the end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, get, logLines, run } from './fixtures/cli.ts'
import { keepAliveLoad } from './fixtures/load.ts'
import { ROUTES, project, started, workerPids } from './fixtures/cluster.ts'

test('--workers 2: two processes serve the same port; ps and the metrics see both', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  // Until both workers answered (the kernel gives a connection to whichever accepts first), at most 300 requests.
  const answering = new Set<number>()
  let requests = 0
  for (; requests < 300 && answering.size < 2; requests++) answering.add((JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { pid: number }).pid)
  assert.equal(answering.size, 2, `pids that answered: ${[...answering].join(', ')}`)
  assert.deepEqual([...answering].sort(), workerPids(child).sort())

  const ps = run(t, [BIN, 'ps'], { cwd: p.dir })
  assert.equal((await ps.exited).code, 0, ps.stderr())
  const [listenerTable, processTable] = ps.stdout().trim().split('\n\n')
  const rows = (listenerTable ?? '').split('\n')
  assert.match(rows[0] ?? '', /^WORKER\s+NAME\s+STATE/)
  assert.equal(rows.length, 1 + 2 * 2, 'one row per worker and listener')
  // The processes: the primary and each worker, with their pid, Node, CPU, memory and event-loop delay.
  const processes = (processTable ?? '').split('\n')
  assert.match(processes[0] ?? '', /^PROCESS\s+PID\s+NODE\s+STARTED \(UTC\)\s+UPTIME\s+CPU\s+RSS\s+HEAP\s+LOOP DELAY p99$/)
  assert.deepEqual(processes.slice(1, 4).map(l => l.split(/\s{2,}/)[0]), ['primary', 'worker 1', 'worker 2'])
  assert.match(processes[4] ?? '', /^workers restarted since the start: 0$/)
  for (const line of processes.slice(1, 4)) assert.match(line, new RegExp(`\\s${process.version.replace(/\./g, '\\.')}\\s.*MiB`))
  const metrics = (await get(`http://127.0.0.1:${p.admin}/metrics`)).body
  const count = /http_request_duration_seconds_count\{listener="public",method="GET",route="\/",status_code="200"\} (\d+)/.exec(metrics)?.[1]
  assert.equal(Number(count), requests, 'the requests of both workers, summed')
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

test('a SIGTERM to a worker that its primary already asked to stop (a roll) joins that drain: its request in flight is answered, no "second SIGTERM"', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  // One slow request on each worker (over new connections the kernel spreads them; 6 make both likely).
  const slow = Array.from({ length: 6 }, () => get(`http://127.0.0.1:${p.port}/slow`))
  await child.waitFor(out => (out.match(/"url":"\/slow"/g) ?? []).length >= 6)
  child.proc.kill('SIGHUP')
  // The first old worker the roll stops says so; a signal from outside reaches it mid-drain.
  const handing = 'the primary hands this worker\'s clients to the others: draining the pool'
  await child.waitFor(out => logLines(out).some(l => l.msg === handing), 20_000)
  const leaving = logLines(child.stdout()).find(l => l.msg === handing)?.pid as number
  process.kill(leaving, 'SIGTERM')
  const replies = await Promise.all(slow)
  for (const r of replies) assert.equal(r.status, 200)
  await child.waitFor(out => /"msg":"rolling reload done/.test(out), 40_000)
  assert.doesNotMatch(child.stdout(), /second SIGTERM/)
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
