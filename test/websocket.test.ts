// WebSockets across restarts: an upgraded connection belongs to the
// generation that took its handshake, keeps working through that
// generation's handlers after a swap, and new handshakes reach the new one.
// Real sockets, the `ws` client, @fastify/websocket and a raw `ws` server.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyPluginAsync } from 'fastify'
import { createPool, type Handler, type ListenerConfig, type ListenerStatus, type Pool, type PoolOptions } from 'fastify-pool'
import { value } from './fixtures/metrics.ts'
import { certPath, memoryLogger, pem, send } from './fixtures/lifecycle.ts'
import { openClient, openClients, pluginHandler, rawHandler, type Builds } from './fixtures/websocket.ts'

const TLS = { cert: certPath('server.crt'), key: certPath('server.key') }

function makePool (t: TestContext, handlers: Handler, server: Partial<ListenerConfig> = {}, options: Partial<PoolOptions> = {}): Pool {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0', ...server }], defaults: { stopTimeout: 10_000 }, handlers, ...options })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const wsUrl = (pool: Pool): string => `${pool.load('a')!.url!.replace(/^http/, 'ws')}/ws`

for (const [kind, make] of [['@fastify/websocket', pluginHandler], ['a raw ws server on upgrade', rawHandler]] as const) {
  for (const secure of [false, true]) {
    test(`100 clients echo across 10 restarts (${kind}, ${secure ? 'HTTPS' : 'HTTP'}): none is closed; new ones reach the new generation`, async (t) => {
      const builds: Builds = { count: 0 }
      const pool = makePool(t, make(builds), secure ? { tls: TLS } : {})
      await pool.start()
      const url = wsUrl(pool)
      const clients = await openClients(url, 100)
      assert.ok(clients.every(c => c.generation === 1))
      const closes: number[] = []
      for (const c of clients) c.ws.on('close', (code) => closes.push(code))
      const listener = pool.load('a')!
      for (let i = 2; i <= 11; i++) {
        const report = await listener.restart()
        assert.equal(report.generation, i)
        // Every old client still talks to the generation that took its handshake.
        const answers = await Promise.all(clients.map(c => c.echo(`round ${i}`)))
        assert.deepEqual(answers, clients.map(c => c.generation))
        const fresh = await openClient(url)
        assert.equal(fresh.generation, i, 'a new handshake reaches the generation serving')
        clients.push(fresh)
      }
      assert.deepEqual(closes, [], 'no WebSocket was closed by a restart')
      const status = listener.status
      assert.equal(status.upgraded, 110)
      assert.equal(status.generation, 11)
      assert.deepEqual(status.retiring.map(r => [r.generation, r.upgraded]), [[1, 100], ...Array.from({ length: 9 }, (_, k) => [k + 2, 1])])
      // HTTP is served by the newest generation meanwhile.
      assert.equal(JSON.parse((await send(`${listener.url!}/`, secure ? { ca: pem('ca.crt') } : {})).body).generation, 11)
    })
  }
}

test('an http2 listener with HTTP/1.1 fallback: WebSockets over TLS live through a restart', async (t) => {
  const builds: Builds = { count: 0 }
  const pool = makePool(t, pluginHandler(builds), { tls: TLS, http2: true })
  await pool.start()
  const url = wsUrl(pool)
  const clients = await openClients(url, 20)
  await pool.load('a')!.restart()
  assert.deepEqual(await Promise.all(clients.map(c => c.echo('after'))), clients.map(() => 1))
  assert.equal((await openClient(url)).generation, 2)
  assert.equal(pool.load('a')!.status.upgraded, 21)
})

test('1,000 handshakes over 20 restarts: each handled once, by the generation serving; no warning; none closed on open', async (t) => {
  const builds: Builds = { count: 0 }
  const { logger, lines } = memoryLogger('warn')
  const handled = new Map<number, number>()
  const counting: Handler = async (app) => {
    const handler = pluginHandler(builds)
    await app.register(handler as FastifyPluginAsync)
    const generation = builds.count
    app.addHook('onRequest', async (request) => {
      if (request.ws) handled.set(generation, (handled.get(generation) ?? 0) + 1)
    })
  }
  const pool = makePool(t, counting, {}, { logger })
  await pool.start()
  const url = wsUrl(pool)
  const listener = pool.load('a')!
  let restarts = 0
  const restarting = (async () => {
    while (restarts < 20) {
      await listener.restart()
      restarts++
    }
  })()
  const closedEarly: number[] = []
  let opened = 0
  // 1,000 handshakes, 20 at a time, while the restarts run and after.
  for (let i = 0; i < 50; i++) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => openClient(url)))
    opened += batch.length
    for (const c of batch) {
      // The echo after the open proved it was not closed right away; close it ourselves.
      assert.ok(c.generation >= 1)
      c.ws.close(1000)
      const { code } = await c.closed
      if (code !== 1000) closedEarly.push(code)
    }
  }
  await restarting
  assert.equal(opened, 1000)
  assert.deepEqual(closedEarly, [])
  let total = 0
  for (const n of handled.values()) total += n
  assert.equal(total, 1000, 'every handshake reached exactly one generation')
  assert.deepEqual(lines.filter(l => l.level >= 40 && /upgrade/i.test(l.msg)), [])
})

test('a listener without a WebSocket plugin serves an Upgrade request as a plain request, before and after a restart', async (t) => {
  const pool = makePool(t, async (app) => { app.get('/', async () => ({ plain: true })) })
  await pool.start()
  const url = `${pool.load('a')!.url!}/`
  const headers = { connection: 'upgrade', upgrade: 'websocket' }
  assert.equal((await send(url, { headers })).status, 200)
  await pool.load('a')!.restart()
  assert.equal((await send(url, { headers })).status, 200)
})

test('the upgraded connections are counted per listener and retiring generation: status, GET /pool, the gauge', async (t) => {
  const builds: Builds = { count: 0 }
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0', upgradeDrainTimeout: 60_000 }, { name: 'admin', listen: '127.0.0.1:0', handler: 'admin' }],
    handlers: { default: pluginHandler(builds), admin: async () => {} },
    metrics: true,
    control: {}
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const url = wsUrl(pool)
  const old = await openClients(url, 3)
  const report = await pool.load('a')!.restart()
  await openClients(url, 2)
  const admin = pool.load('admin')!.url!
  const metrics = (await send(`${admin}/metrics`)).body
  assert.equal(value(metrics, 'fastify_pool_upgraded_connections', { listener: 'a' }), 5)
  assert.equal(value(metrics, 'fastify_pool_upgraded_connections', { listener: 'admin' }), 0)
  const body = JSON.parse((await send(`${admin}/pool`)).body) as { listeners: ListenerStatus[] }
  const a = body.listeners.find(l => l.name === 'a')!
  assert.equal(a.upgraded, 5)
  assert.deepEqual(a.retiring.map(r => [r.generation, r.inflight, r.upgraded]), [[1, 0, 3]])
  // The old generation retires as soon as its last WebSocket closes.
  for (const c of old) c.ws.close(1000)
  const began = Date.now()
  const retired = await report.retired
  assert.ok(Date.now() - began < 5000, 'it did not wait for upgradeDrainTimeout')
  assert.equal(retired?.cut, 0)
  assert.equal(pool.load('a')!.status.retiring.length, 0)
  assert.equal(pool.load('a')!.status.upgraded, 2)
})
