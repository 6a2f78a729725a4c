// The shutdown sequence of pool.stop(): readiness answers 503 for `delay` ms
// while requests are still served (new connections too), then the drain, in
// groups by stopOrder, all within one deadline. Real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool } from 'fastify-pool'
import { deferred, send, within } from './fixtures/lifecycle.ts'

test('with shutdownDelay, readiness answers 503 at once while / still answers 200 on new connections; then the drain', async (t) => {
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    defaults: { shutdownDelay: 400, stopTimeout: 5000 },
    handlers: async (app) => { app.get('/', async () => 'hi') }
  })
  t.after(() => pool.stop({ timeout: 0, delay: 0 }))
  await pool.start()
  const url = pool.load('a')?.url as string
  assert.equal((await send(`${url}/readyz`, { agent: false })).status, 200)
  const began = Date.now()
  const stopping = pool.stop().then(r => ({ reports: r, at: Date.now() }))
  const ready = await send(`${url}/readyz`, { agent: false })
  assert.equal(ready.status, 503)
  assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
  const page = await send(`${url}/`, { agent: false })
  assert.equal(page.status, 200, 'requests are still served during the delay')
  assert.equal(page.body, 'hi')
  assert.equal(pool.load('a')?.state, 'running')
  const { reports, at } = await within(10_000, stopping, 'stop()')
  assert.ok(at - began >= 390, `the drain began after the delay (${at - began} ms)`)
  assert.ok(at - began < 4000, `and the whole stop took ${at - began} ms`)
  assert.equal(reports[0]?.cut, 0)
  assert.equal(pool.load('a')?.status.state, 'stopped')
})

test('the delay counts within the deadline', async (t) => {
  const never = deferred()
  t.after(() => never.resolve())
  const arrived = deferred()
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/hang', async () => { arrived.resolve(); await never.promise; return 'late' }) }
  })
  t.after(() => pool.stop({ timeout: 0, delay: 0 }))
  await pool.start()
  const reply = send(`${pool.load('a')?.url}/hang`, { agent: false }).catch(() => 'cut')
  await within(5_000, arrived.promise, 'the hanging request')
  const began = Date.now()
  const reports = await within(5_000, pool.stop({ timeout: 600, delay: 400 }), 'stop()')
  const took = Date.now() - began
  assert.ok(took >= 590 && took < 1500, `stop() took ${took} ms for a 600 ms deadline with a 400 ms delay`)
  assert.equal(reports[0]?.cut, 1)
  assert.equal(await reply, 'cut')
})

test('stopOrder: the admin listener still answers while the public ones drain', async (t) => {
  const release = deferred()
  const arrived = deferred()
  const pool = createPool({
    servers: [
      { name: 'public', listen: '127.0.0.1:0', handler: 'public' },
      { name: 'admin', listen: '127.0.0.1:0', handler: 'admin', stopOrder: 1 }
    ],
    handlers: {
      public: async (app) => { app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'slow done' }) },
      admin: async (app) => { app.get('/', async () => 'admin') }
    }
  })
  t.after(() => { release.resolve(); return pool.stop({ timeout: 0 }) })
  await pool.start()
  const admin = pool.load('admin')?.url as string
  const slow = send(`${pool.load('public')?.url}/slow`, { agent: false })
  await within(5_000, arrived.promise, 'the slow request')
  const stopping = pool.stop()
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(pool.load('public')?.state, 'draining')
  assert.equal(pool.load('admin')?.state, 'running', 'the admin group waits for the public one')
  assert.equal((await send(`${admin}/`, { agent: false })).body, 'admin')
  release.resolve()
  assert.equal((await slow).body, 'slow done')
  const reports = await within(10_000, stopping, 'stop()')
  assert.deepEqual(reports.map(r => r.name), ['public', 'admin'], 'drained in stopOrder')
  assert.equal(pool.load('admin')?.state, 'stopped')
})
