// Load shedding with --workers (docs/overload.md, docs/operations.md): each
// worker protects itself the same way, so a flood on public leaves the admin
// listener of every worker answering, and the control API reports what each
// worker refused. `fastify-pool start --workers 2` in a process of its own,
// the flood in another (test/fixtures/flood.ts); everything on 127.0.0.1,
// bounded in time. Skipped with FASTIFY_POOL_TEST_BUSY (it measures latency).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { command } from '../fixtures/operate.ts'
import { project, started } from '../fixtures/cluster.ts'
import { p99, probeFlood, startFlood } from '../fixtures/flood-probes.ts'

const BUSY = process.env.FASTIFY_POOL_TEST_BUSY === undefined ? false : 'FASTIFY_POOL_TEST_BUSY is set: this test measures latency'

// 2 ms of CPU a request: two workers on this 2-core machine, beside the
// flood's process, serve some hundreds a second.
const BURN = `
export default async function (app) {
  app.get('/', async () => {
    const end = performance.now() + 2
    while (performance.now() < end);
    return { pid: process.pid }
  })
}
`

// Measured alone on an idle 2-core machine: see the figures in the test's
// diagnostic line. The probes share both cores with two workers and the
// flood, hence a looser limit than the single-process tests' 100 ms.
test('--workers 2, public flooded by 2,000 connections at 6,000 requests a second: admin\'s health, readiness and GET /pool answer in every worker, none fails; the excess gets 503 with Retry-After in each worker, and ps shows each one\'s count', { timeout: 60_000, skip: BUSY }, async (t) => {
  const p = await project(t)
  writeFileSync(join(p.dir, 'routes.js'), BURN)
  const pool = await started(t, p)
  const admin = `http://127.0.0.1:${p.admin}`
  const f = startFlood(t, { port: p.port, path: '/', connections: 2000, seconds: 5, rate: 6000, reconnect: true })
  const probes = await probeFlood([`${admin}/healthz`, `${admin}/readyz`, `${admin}/pool`], f)
  const r = await f.result
  const figures = `${JSON.stringify(r)}; probes p99 ${p99(probes.latencies).toFixed(1)} ms over ${probes.latencies.length} (slowest: ${probes.slowest.join('; ')})`
  t.diagnostic(figures)
  assert.deepEqual(probes.failures, [], figures)
  assert.ok(probes.latencies.length >= 20, figures)
  assert.ok(p99(probes.latencies) <= 250, `probes p99 over 250 ms; ${figures}`)
  assert.ok(r.ok > 500, figures)
  assert.ok(r.shed > 0, figures)
  assert.equal(r.retryAfter, r.shed, `every 503 says when to retry; ${figures}`)
  assert.equal(r.other, 0, figures)

  // Each worker counted its own refusals; together they are what the flood got.
  const ps = await command(t, p.dir, ['ps', '--json'])
  assert.equal(ps.code, 0, ps.stdout + ps.stderr)
  const workers = (JSON.parse(ps.stdout) as { workers: Array<{ pid: number, listeners: Array<{ name: string, overload?: { shed: number, shedding: boolean } }> }> }).workers
  assert.equal(workers.length, 2)
  const shed = workers.map(w => w.listeners.find(l => l.name === 'public')?.overload?.shed ?? -1)
  assert.ok(shed.every(n => n > 0), `each worker shed some: ${JSON.stringify(shed)}`)
  // A 503 written just as its client gave up (or its connection closed) counts in the worker only.
  const total = shed.reduce((a, b) => a + b, 0)
  assert.ok(total >= r.shed && total <= r.shed + r.failed + r.closed, `the workers' counts add up to the 503s the flood got: ${JSON.stringify(shed)} against ${r.shed} (+ ${r.failed} failed, ${r.closed} closed)`)
  for (const w of workers) assert.equal(w.listeners.find(l => l.name === 'admin')?.overload?.shed, 0, 'admin never sheds')
  const text = (await command(t, p.dir, ['ps'])).stdout
  assert.match(text, /SHED/, text)

  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})
