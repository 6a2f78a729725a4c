// Per-listener liveness and readiness routes: defaults, configuration, and
// what readiness answers while a listener starts, runs and drains.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { createPool, type Pool, type PoolOptions } from 'fastify-pool'
import { get, type Reply } from './fixtures/client.ts'
import { deferred, tick } from './fixtures/lifecycle.ts'

/** A request on a connection of its own (no socket outlives it). */
const call = (url: string, method = 'GET'): Promise<Reply> => get(url, { method, agent: false })
const turn = tick

function pool (t: { after: (fn: () => Promise<unknown>) => void }, options: PoolOptions): Pool {
  const p = createPool(options)
  t.after(() => p.stop())
  return p
}

const routes = async (app: import('fastify').FastifyInstance): Promise<void> => { app.get('/', async () => 'hello') }

test('by default every listener serves /healthz and /readyz, with a status word only', async (t) => {
  const p = pool(t, { servers: [{ name: 'public', listen: '127.0.0.1:0' }], handlers: routes })
  await p.start()
  const url = p.load('public')?.url as string
  const live = await call(`${url}/healthz`)
  assert.equal(live.status, 200)
  assert.deepEqual(JSON.parse(live.body), { status: 'ok' })
  assert.equal(live.headers['cache-control'], 'no-store')
  const ready = await call(`${url}/readyz`)
  assert.equal(ready.status, 200)
  assert.deepEqual(JSON.parse(ready.body), { status: 'ready' })
  assert.equal(ready.headers['cache-control'], 'no-store')
  // Load balancers often probe with HEAD.
  const head = await call(`${url}/readyz`, 'HEAD')
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
})

test('health paths come from defaults.health, a listener may override them or turn them off', async (t) => {
  const p = pool(t, {
    servers: [
      { name: 'inherits', listen: '127.0.0.1:0' },
      { name: 'own', listen: 'localhost:0', health: { readiness: '/own/ready', liveness: false } },
      { name: 'none', listen: '[::1]:0', health: false }
    ],
    defaults: { health: { liveness: '/live', readiness: '/ready' } },
    handlers: routes
  })
  const status = async (name: string, path: string): Promise<number> => (await p.inject(name, path)).statusCode
  assert.equal(await status('inherits', '/live'), 200)
  assert.equal(await status('inherits', '/ready'), 503, 'a stopped listener is not ready')
  assert.equal(await status('inherits', '/healthz'), 404)
  assert.equal(await status('inherits', '/readyz'), 404)
  assert.equal(await status('own', '/own/ready'), 503)
  assert.equal(await status('own', '/live'), 404)
  assert.equal(await status('own', '/healthz'), 404)
  assert.equal(await status('none', '/healthz'), 404)
  assert.equal(await status('none', '/readyz'), 404)
  assert.equal(await status('none', '/'), 200)
  await p.start()
  assert.equal(await status('inherits', '/ready'), 200)
  assert.equal(await status('own', '/own/ready'), 200)
})

test('readiness answers 503 "starting" while the listener starts, liveness answers 200', async (t) => {
  const gate = deferred()
  let builds = 0
  const p = pool(t, {
    servers: [{ name: 'slow', listen: '127.0.0.1:0' }],
    handlers: routes,
    // The first instance (the one start() builds) waits for the gate.
    factory: async (_config, options) => {
      if (++builds === 1) await gate.promise
      return Fastify(options)
    }
  })
  const listener = p.load('slow')
  const starting = p.start()
  await turn()
  assert.equal(listener?.state, 'starting')
  const ready = await p.inject('slow', '/readyz')
  assert.equal(ready.statusCode, 503)
  assert.deepEqual(ready.json(), { status: 'starting' })
  assert.equal((await p.inject('slow', '/healthz')).statusCode, 200)
  gate.resolve()
  await starting
  const now = await call(`${listener?.url as string}/readyz`)
  assert.equal(now.status, 200)
  assert.deepEqual(JSON.parse(now.body), { status: 'ready' })
})

test('readiness answers 503 "draining" while the listener drains, liveness answers 200', async (t) => {
  const arrived = deferred()
  const release = deferred()
  const p = pool(t, {
    servers: [{ name: 'busy', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.get('/slow', async () => {
        arrived.resolve()
        await release.promise
        return 'done'
      })
    }
  })
  await p.start()
  const listener = p.load('busy')
  const slow = call(`${listener?.url as string}/slow`)
  await arrived.promise
  const stopping = p.stop()
  await turn()
  assert.equal(listener?.state, 'draining')
  const ready = await p.inject('busy', '/readyz')
  assert.equal(ready.statusCode, 503)
  assert.deepEqual(ready.json(), { status: 'draining' })
  const live = await p.inject('busy', '/healthz')
  assert.equal(live.statusCode, 200)
  release.resolve()
  assert.equal((await slow).body, 'done')
  await stopping
  assert.equal(listener?.state, 'stopped')
})
