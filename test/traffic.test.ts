// Each listener's traffic (request rate, 5xx share, p50/p99) as GET /pool,
// `ps` and the status page report it: read from the request-duration
// histogram over about the last 10 s, with no timer and nothing more per
// request.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool, type TrafficFigures } from 'fastify-pool'
import { type ControlStatusBody } from 'fastify-pool/control'
import { RouteHistogram } from '../packages/fastify-pool/src/observability/histogram.ts'
import { quantile, TrafficWindow, WINDOW_MS } from '../packages/fastify-pool/src/observability/traffic.ts'
import { statusTable } from '../packages/fastify-pool-cli/src/operate.ts'
import { send } from './fixtures/lifecycle.ts'

test('a quantile is interpolated inside the bucket that holds it, as histogram_quantile() does', () => {
  const buckets = [0.001, 0.01, 0.1]
  // 10 responses: 5 under 1 ms, 4 between 1 and 10 ms, 1 between 10 and 100 ms.
  const counts = [5, 4, 1]
  assert.equal(quantile(buckets, counts, 10, 0.5), 1)
  assert.equal(quantile(buckets, counts, 10, 0.7), 1 + 9 * (2 / 4))
  assert.equal(quantile(buckets, counts, 10, 0.99), 10 + 90 * 0.9)
  assert.equal(quantile(buckets, counts, 0, 0.5), null)
  // Beyond the last bucket: its bound, not a guess.
  assert.equal(quantile(buckets, [0, 0, 0], 3, 0.5), 100)
})

test('the window compares with the newest snapshot at least 10 s old; a reset counts from zero', () => {
  const h = new RouteHistogram('d', 'd', [0.01, 0.1, 1])
  const ok = h.series({ listener: 'api', method: 'GET', route: '/', status_code: '200' })
  const failed = h.series({ listener: 'api', method: 'GET', route: '/', status_code: '503' })
  const window = new TrafficWindow(h, 0)
  for (let i = 0; i < 18; i++) h.observe(ok, 0.005)
  h.observe(failed, 0.5)
  h.observe(failed, 0.5)
  const first = window.read(['api', 'idle'], 2000).get('api') as TrafficFigures
  assert.deepEqual({ ...first, p50: undefined, p99: undefined }, { window: 2, requests: 20, rate: 10, errorRate: 0.1, p50: undefined, p99: undefined })
  assert.ok(first.p50 !== null && first.p50 < 10, `p50 ${first.p50}`)
  assert.ok(first.p99 !== null && first.p99 > 100, `p99 ${first.p99}`)
  assert.deepEqual(window.read(['api', 'idle'], 2000).get('idle'), { window: 2, requests: 0, rate: 0, errorRate: null, p50: null, p99: null })
  // A reading at 2 s kept a snapshot; at 13 s the base is that one (11 s earlier), not the start.
  for (let i = 0; i < 11; i++) h.observe(ok, 0.005)
  const later = window.read([], 13_000).get('api') as TrafficFigures
  assert.equal(later.window, 11)
  assert.equal(later.requests, 11)
  assert.equal(later.errorRate, 0)
  assert.ok(WINDOW_MS <= 11_000)
  h.reset()
  h.observe(ok, 0.005)
  const reset = window.read([], 30_000).get('api') as TrafficFigures
  assert.equal(reset.requests, 1, 'after a reset the totals are counted from zero, never negative')
})

test('GET /pool and ps show each listener\'s rate, 5xx share and latency with metrics on; without them, nothing is recorded for it', async (t) => {
  const pool = createPool({
    metrics: true,
    control: { listener: 'admin' },
    servers: [{ name: 'api', listen: '127.0.0.1:0' }, { name: 'quiet', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.get('/', async () => 'hi')
      app.get('/fail', async (_request, reply) => reply.code(500).send('no'))
      app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 60)); return 'late' })
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const api = pool.load('api')!.url!
  for (let i = 0; i < 16; i++) assert.equal((await send(`${api}/`)).status, 200)
  for (let i = 0; i < 2; i++) assert.equal((await send(`${api}/fail`)).status, 500)
  for (let i = 0; i < 2; i++) assert.equal((await send(`${api}/slow`)).status, 200)
  const answer = await send(`${pool.load('admin')!.url!}/pool`)
  const body = JSON.parse(answer.body) as ControlStatusBody
  const byName = new Map(body.listeners.map(l => [l.name, l.traffic]))
  const traffic = byName.get('api')!
  assert.equal(traffic.requests, 20)
  assert.equal(traffic.errorRate, 0.1)
  assert.ok(traffic.rate > 0 && traffic.window > 0 && traffic.window <= 60, JSON.stringify(traffic))
  assert.ok(traffic.p50 !== null && traffic.p50 < 50, `p50 ${traffic.p50}`)
  assert.ok(traffic.p99 !== null && traffic.p99 >= 50, `the slow route shows in p99: ${traffic.p99}`)
  assert.deepEqual({ ...byName.get('quiet'), window: 0 }, { window: 0, requests: 0, rate: 0, errorRate: null, p50: null, p99: null })
  const table = statusTable(body.listeners)
  assert.match(table.split('\n')[0]!, /REQ\/S\s+5XX\s+P50\s+P99/)
  assert.match(table.split('\n').find(l => l.startsWith('api'))!, /\s10\.0 %\s/)

  const plain = createPool({ control: { listener: 'admin' }, servers: [{ name: 'admin', listen: '127.0.0.1:0' }], handlers: async () => {} })
  t.after(() => plain.stop({ timeout: 0 }))
  await plain.start()
  const without = JSON.parse((await send(`${plain.load('admin')!.url!}/pool`)).body) as ControlStatusBody
  assert.equal(without.listeners[0]!.traffic, undefined)
  assert.doesNotMatch(statusTable(without.listeners), /REQ\/S/)
})
