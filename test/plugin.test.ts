// The Fastify plugin: options checked at register time, the pool's life tied
// to the app's listen/ready/close, handlers per key, the app's logger.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyPool, { type FastifyPoolOptions } from 'fastify-pool'
import { get as send, type Reply } from './fixtures/client.ts'
import { deferred } from './fixtures/lifecycle.ts'

/** GET on a fresh connection (no agent, so no socket outlives the request). */
const get = (url: string, path = '/'): Promise<Reply> => send(new URL(path, url).href, { agent: false })

/** Resolves with the error code a connection attempt fails with (or 'connected'). */
function dial (url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => { res.resume(); resolve('connected') })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    req.end()
  })
}

const byKey: NonNullable<FastifyPoolOptions['handlers']> = {
  public: async (app) => { app.get('/', async () => ({ served: 'public' })) },
  admin: async (app) => { app.get('/admin', async () => ({ served: 'admin' })) }
}

function twoListeners (): FastifyPoolOptions {
  return {
    servers: [
      { name: 'public', listen: '127.0.0.1:0', handler: 'public' },
      { name: 'admin', listen: '127.0.0.1:0', handler: 'admin' }
    ],
    handlers: byKey
  }
}

function app (t: { after: (fn: () => Promise<void>) => void }, options: FastifyPoolOptions): FastifyInstance {
  const instance = Fastify()
  instance.register(fastifyPool, options)
  t.after(() => instance.close())
  return instance
}

test('bad options fail the registration with every problem, each naming its option', async (t) => {
  const instance = Fastify()
  t.after(() => instance.close())
  instance.register(fastifyPool, {
    servers: [{ name: 'a', listen: 'nowhere' }],
    drainDelay: -1,
    monitor: { interval: 0 },
    // @ts-expect-error a typo must be reported, not ignored
    server: []
  })
  await assert.rejects(async () => { await instance.ready() }, (err: Error & { code: string, errors: Array<{ path: string, message: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    const paths = err.errors.map(e => e.path).sort()
    assert.deepEqual(paths, ['drainDelay', 'monitor.interval', 'server', 'servers[0].listen'])
    for (const path of paths) assert.match(err.message, new RegExp(path.replace(/[[\].]/g, '\\$&')))
    return true
  })
})

test('options that are not an object are refused with FST_POOL_VALIDATE', async (t) => {
  const instance = Fastify()
  t.after(() => instance.close())
  instance.register(fastifyPool, 'servers.yaml' as unknown as FastifyPoolOptions)
  await assert.rejects(async () => { await instance.ready() }, { code: 'FST_POOL_VALIDATE', message: /options: must be an object/ })
})

test('ready() alone opens no pool port; inject still works through each listener', async (t) => {
  const instance = app(t, twoListeners())
  await instance.ready()
  for (const l of instance.pool) {
    assert.equal(l.state, 'stopped')
    assert.equal(l.address, undefined)
    assert.equal(l.server, undefined)
  }
  const res = await instance.pool.inject('public', '/')
  assert.deepEqual(res.json(), { served: 'public' })
  for (const l of instance.pool) assert.equal(l.server, undefined)
  assert.equal(instance.server.listening, false)
})

test('an app only ready()d and closed leaves nothing open, the in-memory instances included', async () => {
  // Closed handles are released a loop turn or two after close(): let them go before counting.
  const servers = async (): Promise<number> => {
    for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
    return process.getActiveResourcesInfo().filter(r => r === 'TCPServerWrap').length
  }
  const baseline = await servers()
  let closedInstances = 0
  const instance = Fastify()
  instance.register(fastifyPool, {
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.addHook('onClose', async () => { closedInstances++ })
      app.get('/', async () => 'ok')
    }
  })
  await instance.ready()
  assert.equal((await instance.pool.inject('a', '/')).body, 'ok')
  assert.equal((await instance.pool.inject('b', '/')).body, 'ok')
  assert.equal(await servers(), baseline)
  await instance.close()
  assert.equal(closedInstances, 2)
  assert.equal(await servers(), baseline)
})

test('registered in an encapsulated context, the pool still starts with the root listen()', async (t) => {
  const root = Fastify()
  t.after(() => root.close())
  let nested: FastifyInstance | undefined
  root.register(async (child) => {
    child.register(fastifyPool, twoListeners())
    child.after(() => { nested = child })
  })
  await root.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(root.hasDecorator('pool'), false)
  const pool = nested?.pool
  assert.equal(pool?.load('public')?.state, 'running')
  await root.close()
  assert.equal(pool?.isRunning(), false)
})

test('listen() resolves after every enabled listener is bound; close() drains and closes them', async (t) => {
  const order: string[] = []
  const arrived = deferred()
  const release = deferred()
  const instance = app(t, {
    servers: [
      { name: 'public', listen: '127.0.0.1:0', handler: 'public' },
      { name: 'admin', listen: '127.0.0.1:0', handler: 'admin' },
      { name: 'off', listen: '127.0.0.1:0', handler: 'public', disabled: true }
    ],
    handlers: {
      ...byKey,
      public: async (app) => {
        app.get('/', async () => ({ served: 'public' }))
        // Server side: the response is fully written before close() may resolve.
        app.addHook('onResponse', async (request) => { if (request.url === '/slow') order.push('response') })
        app.get('/slow', async () => {
          arrived.resolve()
          await release.promise
          return { slow: true }
        })
      }
    }
  })
  const draining = deferred()
  // Registered after the plugin, so it runs after the plugin's preClose hook.
  instance.addHook('preClose', (done) => { draining.resolve(); done() })
  await instance.listen({ port: 0, host: '127.0.0.1' })
  const pub = instance.pool.load('public')
  const admin = instance.pool.load('admin')
  assert.equal(pub?.state, 'running')
  assert.equal(admin?.state, 'running')
  assert.equal(instance.pool.load('off')?.state, 'stopped')
  const publicUrl = pub?.url as string
  const adminUrl = admin?.url as string
  assert.deepEqual(JSON.parse((await get(publicUrl)).body), { served: 'public' })
  assert.deepEqual(JSON.parse((await get(adminUrl, '/admin')).body), { served: 'admin' })

  // A request in flight when close() starts completes, and close() waits for it.
  const slow = get(publicUrl, '/slow')
  await arrived.promise
  const closing = instance.close().then(() => { order.push('closed') })
  await draining.promise
  // The plugin's preClose hook has begun the stop; let its first steps run.
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(pub?.state, 'draining')
  release.resolve()
  const answer = await slow
  assert.equal(answer.status, 200)
  assert.equal(answer.headers.connection, 'close')
  await closing
  assert.deepEqual(order, ['response', 'closed'])
  assert.equal(pub?.state, 'stopped')
  assert.equal(admin?.state, 'stopped')
  assert.equal(await dial(publicUrl), 'ECONNREFUSED')
  assert.equal(await dial(adminUrl), 'ECONNREFUSED')
})

test('a listener that fails to start makes listen() reject with FST_POOL_START, and the app port stays closed', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise<void>(resolve => blocker.close(() => resolve())))
  const port = (blocker.address() as AddressInfo).port
  const instance = app(t, {
    servers: [
      { name: 'fine', listen: '127.0.0.1:0', handler: 'public' },
      { name: 'busy', listen: `127.0.0.1:${port}`, handler: 'public' }
    ],
    handlers: byKey
  })
  await assert.rejects(instance.listen({ port: 0, host: '127.0.0.1' }), (err: Error & { code: string, errors: Array<{ name: string, error: Error & { code?: string } }> }) => {
    assert.equal(err.code, 'FST_POOL_START')
    assert.deepEqual(err.errors.map(e => e.name), ['busy'])
    assert.equal(err.errors[0]?.error.code, 'EADDRINUSE')
    return true
  })
  assert.equal(instance.server.listening, false)
  // The pool rolled back the listener that did start.
  assert.equal(instance.pool.load('fine')?.state, 'stopped')
})

test('an app port that fails to open stops the listeners listen() started', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise<void>(resolve => blocker.close(() => resolve())))
  const port = (blocker.address() as AddressInfo).port
  const instance = app(t, twoListeners())
  await assert.rejects(instance.listen({ port, host: '127.0.0.1' }), { code: 'EADDRINUSE' })
  // The stop is queued behind the start; close() waits for it.
  await instance.close()
  for (const l of instance.pool) assert.equal(l.state, 'stopped')
})

test('listen(callback) starts the pool too', async (t) => {
  const instance = app(t, twoListeners())
  const address = await new Promise<string>((resolve, reject) => {
    instance.listen({ port: 0, host: '127.0.0.1' }, (err, addr) => err === null ? resolve(addr) : reject(err))
  })
  assert.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(instance.pool.load('public')?.state, 'running')
})

test('an app that is only a container: ready() then pool.start(), and close() stops it', async (t) => {
  const instance = app(t, twoListeners())
  await instance.ready()
  await instance.pool.start()
  assert.equal(instance.server.listening, false)
  const url = instance.pool.load('public')?.url as string
  assert.equal((await get(url)).status, 200)
  await instance.close()
  assert.equal(instance.pool.isRunning(), false)
  assert.equal(await dial(url), 'ECONNREFUSED')
})

test('one plugin for every listener, or one per handler key', async (t) => {
  const shared = app(t, {
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/who', async (request) => ({ host: request.hostname })) }
  })
  await shared.ready()
  for (const name of ['a', 'b']) assert.equal((await shared.pool.inject(name, '/who')).statusCode, 200)

  const keyed = app(t, twoListeners())
  await keyed.ready()
  assert.equal((await keyed.pool.inject('public', '/')).statusCode, 200)
  assert.equal((await keyed.pool.inject('public', '/admin')).statusCode, 404)
  assert.equal((await keyed.pool.inject('admin', '/admin')).statusCode, 200)
  assert.equal((await keyed.pool.inject('admin', '/')).statusCode, 404)
})

test('listeners log through a child of the app logger, unless a logger is given', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const instance = Fastify({ logger: { level: 'info', stream } })
  t.after(() => instance.close())
  instance.register(fastifyPool, { servers: [{ name: 'public', listen: '127.0.0.1:0' }], handlers: byKey.public })
  await instance.listen({ port: 0, host: '127.0.0.1' })
  const started = lines.find(l => l.msg === 'listener started')
  assert.ok(started, 'the listener logged its start through the app logger')
  assert.equal(started.listener, 'public')
  assert.equal(started.bind, '127.0.0.1:0')

  const quiet: Array<unknown> = []
  const silent = Fastify({ logger: { level: 'info', stream: new Writable({ write (chunk: Buffer, _e, done) { quiet.push(chunk.toString()); done() } }) } })
  t.after(() => silent.close())
  silent.register(fastifyPool, { servers: [{ name: 'q', listen: '127.0.0.1:0' }], handlers: byKey.public, logger: false })
  await silent.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(quiet.some(line => String(line).includes('"listener":"q"')), false)
})

test('drainDelay: readiness answers 503 while the listener still serves, then the drain starts', async (t) => {
  const drainDelay = 2000
  const instance = Fastify()
  instance.register(fastifyPool, { servers: [{ name: 'public', listen: '127.0.0.1:0' }], handlers: byKey.public, drainDelay })
  const holding = deferred()
  // Registered after the plugin, so it runs after the plugin's preClose hook.
  instance.addHook('preClose', (done) => { holding.resolve(); done() })
  t.after(() => instance.close())
  await instance.listen({ port: 0, host: '127.0.0.1' })
  const url = instance.pool.load('public')?.url as string
  assert.equal((await get(url, '/readyz')).status, 200)

  const began = Date.now()
  const closing = instance.close()
  await holding.promise
  const ready = await get(url, '/readyz')
  assert.equal(ready.status, 503)
  assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
  assert.equal((await get(url, '/healthz')).status, 200)
  assert.equal((await get(url, '/')).status, 200)
  await closing
  assert.ok(Date.now() - began >= drainDelay - 5, 'the drain waited for drainDelay')
  assert.equal(await dial(url), 'ECONNREFUSED')
})

test('monitor: true starts periodic checks with listen(); close() ends them', async (t) => {
  const instance = app(t, { ...twoListeners(), monitor: { interval: 60_000 } })
  await instance.ready()
  assert.equal(instance.pool.monitoring, false)
  await instance.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(instance.pool.monitoring, true)
  const reports = await instance.pool.monitor()
  assert.deepEqual(reports.map(r => r.status), ['ok', 'ok'])
  await instance.close()
  assert.equal(instance.pool.monitoring, false)
})
