// In-memory testing: pool.inject() and listener.inject() run a request
// through a listener's Fastify instance without a socket when the pool is
// stopped, and through the live instance when it runs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool, type Handlers, type Pool } from 'fastify-pool'
import { get as send } from './fixtures/client.ts'

const get = async (url: string): Promise<string> => (await send(url, { agent: false })).body

const listeningServers = (): number => process.getActiveResourcesInfo().filter(r => r === 'TCPServerWrap').length

/** Each Fastify instance built gets a number; its routes answer it. */
function numbered (): { handlers: Handlers, closed: number[] } {
  let built = 0
  const closed: number[] = []
  const routes = (key: string) => async (app: import('fastify').FastifyInstance) => {
    const instance = ++built
    app.addHook('onClose', async () => { closed.push(instance) })
    app.get('/', async () => ({ key, instance }))
  }
  return { handlers: { public: routes('public'), admin: routes('admin') }, closed }
}

function pool (t: { after: (fn: () => Promise<unknown>) => void }, handlers: Handlers): Pool {
  const p = createPool({
    servers: [
      { name: 'public', listen: '127.0.0.1:0', handler: 'public' },
      // Two port-0 binds on one host would share a bind key; keep them apart.
      { name: 'admin', listen: 'localhost:0', handler: 'admin' }
    ],
    handlers
  })
  t.after(() => p.stop())
  return p
}

test('with the pool stopped, inject() reaches each listener by name or bind and opens no port', async (t) => {
  const { handlers } = numbered()
  const p = pool(t, handlers)
  const before = listeningServers()
  const byName = await p.inject('public', '/')
  assert.equal(byName.statusCode, 200)
  assert.equal(byName.json().key, 'public')
  const byBind = await p.inject(p.load('admin')?.bind as string, { method: 'GET', url: '/' })
  assert.equal(byBind.json().key, 'admin')
  const direct = await p.load('admin')?.inject('/')
  assert.equal(direct?.json().key, 'admin')
  for (const l of p) {
    assert.equal(l.isRunning, false)
    assert.equal(l.address, undefined)
    assert.equal(l.server, undefined)
  }
  assert.equal(listeningServers(), before)
})

test('the in-memory instance is built once, reused, and closed when the listener starts or stops', async (t) => {
  const { handlers, closed } = numbered()
  const p = pool(t, handlers)
  const first = (await p.inject('public', '/')).json().instance
  assert.equal((await p.inject('public', '/')).json().instance, first, 'reused')
  await p.load('public')?.start()
  assert.deepEqual(closed, [first], 'start() closed the in-memory instance')
  await p.load('public')?.stop()
  const admin = (await p.inject('admin', '/')).json().instance
  await p.stop()
  assert.ok(closed.includes(admin), 'stop() of a stopped listener closes its in-memory instance')
})

test('with the pool running, inject() goes through the live instance, the one the socket serves', async (t) => {
  const { handlers } = numbered()
  const p = pool(t, handlers)
  await p.start()
  for (const name of ['public', 'admin']) {
    const l = p.load(name)
    const injected = (await p.inject(name, '/')).json()
    const served = JSON.parse(await get(l?.url as string))
    assert.equal(injected.key, name)
    assert.deepEqual(injected, served)
  }
  // After a restart, inject() follows the new generation.
  const before = (await p.inject('public', '/')).json().instance
  await p.load('public')?.restart()
  const after = (await p.inject('public', '/')).json().instance
  assert.notEqual(after, before)
  assert.equal(JSON.parse(await get(p.load('public')?.url as string)).instance, after)
})

test('inject() on an unknown listener rejects with FST_POOL_NOT_FOUND', async (t) => {
  const { handlers } = numbered()
  const p = pool(t, handlers)
  await assert.rejects(p.inject('nobody', '/'), { code: 'FST_POOL_NOT_FOUND', message: /nobody/ })
})

test('an inject() made while the listener starts gets an in-memory instance that stop() closes', async (t) => {
  let began!: () => void
  let open!: () => void
  const building = new Promise<void>(resolve => { began = resolve })
  const gate = new Promise<void>(resolve => { open = resolve })
  let built = 0
  const closed: number[] = []
  const p = createPool({
    servers: [{ name: 'public', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      const instance = ++built
      app.addHook('onClose', async () => { closed.push(instance) })
      app.get('/', async () => ({ instance }))
      // Hold the live instance's build so the inject below lands while the listener is starting.
      if (instance === 1) { began(); await gate }
    }
  })
  t.after(() => p.stop())
  const starting = p.start()
  await building
  assert.equal(p.load('public')?.state, 'starting')
  const early = await p.inject('public', '/')
  assert.equal(early.json().instance, 2)
  open()
  await starting
  await p.stop()
  assert.deepEqual(closed.sort(), [1, 2], 'stop() closes the live instance and the in-memory one')
})
