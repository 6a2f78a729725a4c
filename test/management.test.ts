// Managing a pool's listeners: storeNew/store, load/has, delete, clean,
// iteration, clone, merge, handler(), the factory option and the default logger.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { createPool, Listener, type ValidationIssue } from 'fastify-pool'
import { get } from './fixtures/client.ts'

const hello = (text: string) => async (app: FastifyInstance): Promise<void> => {
  app.get('/', async () => text)
}

const portOf = (l: Listener | undefined): number => (l?.address as { port: number }).port

test('storeNew validates against the pool, then adds and returns the listener', () => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:7001' }], handlers: { default: hello('a') } })
  const b = p.storeNew({ name: 'b', listen: '127.0.0.1:7002' })
  assert.ok(b instanceof Listener)
  assert.equal(p.size, 2)
  assert.equal(p.load('b'), b)

  assert.throws(() => p.storeNew({ name: 'a', listen: '127.0.0.1:7003' }), (err: Error & { errors: ValidationIssue[] }) => {
    assert.equal((err as { code?: string }).code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors.map(e => e.path), ['config.name'])
    assert.match(err.errors[0]?.message ?? '', /"a" is already used by another listener \(127.0.0.1:7001\)/)
    return true
  })
  assert.throws(() => p.storeNew({ name: 'c', listen: ':7002' }), (err: Error & { errors: ValidationIssue[] }) => {
    assert.deepEqual(err.errors.map(e => [e.path, e.message]), [['config.listen', ':7002 overlaps 127.0.0.1:7002 of listener "b"']])
    return true
  })
  assert.throws(() => p.storeNew({ name: 'd', listen: ':7004', handler: 'admin', bogus: true } as never), (err: Error & { errors: ValidationIssue[] }) => {
    assert.deepEqual(err.errors.map(e => e.path).sort(), ['config.bogus', 'config.handler'])
    return true
  })
  assert.throws(() => p.storeNew(null as never), (err: Error & { errors: ValidationIssue[] }) => {
    assert.deepEqual(err.errors.map(e => e.path), ['config'])
    return true
  })
  assert.equal(p.size, 2, 'a refused config adds nothing')
  // Port 0 never clashes: any number of such listeners.
  for (let i = 0; i < 5; i++) p.storeNew({ name: `zero-${i}`, listen: '127.0.0.1:0' })
  assert.equal(p.size, 7)
})

test('storeNew uses the pool defaults and baseDir', () => {
  const p = createPool({ defaults: { bodyLimit: 42 }, baseDir: '/srv' })
  const l = p.storeNew({ name: 's', listen: 'unix:app.sock' })
  assert.equal(l.config.bodyLimit, 42)
  assert.equal(l.bind, 'unix:/srv/app.sock')
})

test('store replaces a stopped listener on the same name or bind, refuses a running one', async (t) => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:7010' }] })
  const other = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'x', listen: ':7010' }, { name: 'new', listen: '127.0.0.1:0' }] })
  t.after(async () => { await p.stop(); await other.stop() })
  const a = p.load('a')

  p.store(other.load('new') as Listener)
  assert.equal(p.size, 3)

  const x = other.load('x') as Listener
  p.store(x) // overlaps the stopped b on port 7010
  assert.equal(p.has('b'), false)
  assert.equal(p.load(':7010'), x)

  await a?.start()
  assert.throws(() => p.store(other.load('a') as Listener), {
    code: 'FST_POOL_ADD',
    message: /"a" \(127.0.0.1:0\) would replace running listener\(s\) "a" \(127.0.0.1:0\); stop them first/
  })
  assert.equal(p.load('a'), a, 'the running listener stays')
  await a?.stop()
  p.store(other.load('a') as Listener)
  assert.equal(p.load('a'), other.load('a'))
  assert.equal(p.size, 3)

  assert.throws(() => p.store({ name: 'fake' } as never), { code: 'FST_POOL_INVALID_ARGUMENT', message: /use storeNew\(\) for a config/ })
})

test('load and has: by bind (any spelling), by name, by the real address of a port-0 listener', async (t) => {
  const p = createPool({
    servers: [
      { name: 'v6', listen: '[::1]:0' },
      { name: 'fixed', listen: '127.0.0.1:7020' },
      { name: 'all', listen: ':7021' },
      { name: 'zero', listen: '127.0.0.1:0' }
    ]
  })
  t.after(() => p.stop())
  assert.equal(p.load('fixed')?.bind, '127.0.0.1:7020')
  assert.equal(p.load('127.0.0.1:7020')?.name, 'fixed')
  assert.equal(p.load('7021')?.name, 'all')
  assert.equal(p.load('[0:0::1]:0')?.name, 'v6')
  assert.equal(p.load('127.0.0.1:0')?.name, 'zero', 'a port-0 bind finds the first listener configured with it')
  assert.equal(p.has('fixed'), true)
  assert.equal(p.has('127.0.0.1:7020'), true)
  assert.equal(p.has('127.0.0.1:7999'), false)
  assert.equal(p.has('nobody'), false)
  assert.equal(p.load('nobody'), undefined)
  assert.throws(() => p.load(''), { code: 'FST_POOL_PARAM_EMPTY', message: /key/ })
  assert.throws(() => p.has(undefined as never), { code: 'FST_POOL_PARAM_EMPTY' })

  const zero = p.load('zero') as Listener
  const v6 = p.load('v6') as Listener
  await zero.start()
  await v6.start()
  assert.equal(p.load(`127.0.0.1:${portOf(zero)}`), zero)
  assert.equal(p.has(`127.0.0.1:${portOf(zero)}`), true)
  assert.equal(p.load(`[::1]:${portOf(v6)}`), v6)
  const port = portOf(zero)
  await zero.stop()
  assert.equal(p.has(`127.0.0.1:${port}`), false, 'a stopped listener has no real address')
})

test('delete, loadAndDelete, clean, size and iteration', async (t) => {
  const p = createPool({ servers: ['a', 'b', 'c', 'd'].map((name, i) => ({ name, listen: `127.0.0.1:${7030 + i}` })) })
  assert.equal(p.size, 4)
  assert.deepEqual([...p].map(l => l.name), ['a', 'b', 'c', 'd'])
  let count = 0
  for (const l of p) { assert.ok(l instanceof Listener); count++ }
  assert.equal(count, 4)

  assert.equal(p.delete('127.0.0.1:7030'), true)
  assert.equal(p.delete('127.0.0.1:7030'), false)
  assert.equal(p.delete('b'), true)
  assert.equal(p.size, 2)

  const c = p.loadAndDelete('c')
  assert.equal(c?.name, 'c')
  assert.equal(p.loadAndDelete('c'), undefined)
  assert.equal(p.size, 1)

  // Deleting does not stop: the caller still holds the listener and stops it.
  const d = p.load('d') as Listener
  const z = p.storeNew({ name: 'z', listen: '127.0.0.1:0' })
  t.after(async () => { await d.stop(); await z.stop() })
  await p.start()
  const taken = p.loadAndDelete('d')
  assert.equal(taken?.isRunning, true)
  p.clean()
  assert.equal(p.size, 0)
  assert.deepEqual([...p], [])
  assert.equal(z.isRunning, true, 'clean() removes, it does not stop')
  assert.equal(p.isRunning(), false, 'an empty pool runs nothing')
})

test('clone is independent: new unstarted listeners from the same configs', async (t) => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0', handler: 'b' }], handlers: { default: hello('a'), b: hello('b') } })
  const c = p.clone()
  t.after(async () => { await p.stop(); await c.stop() })
  assert.equal(c.size, 2)
  assert.notEqual(c.load('a'), p.load('a'))
  assert.equal(c.load('a')?.config, p.load('a')?.config, 'same frozen config')

  await c.start()
  assert.equal(c.isRunning(), true)
  assert.equal(p.isRunning(), false, 'starting the clone does not start the original')
  await p.start()
  assert.notEqual(portOf(c.load('a')), portOf(p.load('a')), 'each on its own port')
  assert.equal((await get(`${c.load('b')?.url}/`)).body, 'b', 'the clone serves the same handlers')

  const again = p.clone()
  assert.equal(again.isRunning(), false, 'a clone of a running pool is not running')
  const removed = c.loadAndDelete('a')
  await removed?.stop()
  assert.equal(p.has('a'), true, 'removing from the clone leaves the original')
  c.handler({ default: hello('x'), b: hello('x') })
  await p.restart()
  assert.equal((await get(`${p.load('b')?.url}/`)).body, 'b', 'handler() on the clone does not reach the original')
})

test('merge adds the other pool\'s listeners; the incoming one wins on a shared name or bind', () => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:7040' }, { name: 'b', listen: '127.0.0.1:7041' }, { name: 'keep', listen: '127.0.0.1:7042' }] })
  const other = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:7050' }, { name: 'other-b', listen: ':7041' }, { name: 'new', listen: '127.0.0.1:0' }] })
  p.merge(other)
  assert.deepEqual([...p].map(l => [l.name, l.bind]).sort(), [
    ['a', '127.0.0.1:7050'],
    ['keep', '127.0.0.1:7042'],
    ['new', '127.0.0.1:0'],
    ['other-b', ':7041']
  ])
  assert.equal(p.load('a'), other.load('a'), 'the incoming listener object itself')
  assert.throws(() => p.merge({} as never), { code: 'FST_POOL_INVALID_ARGUMENT' })
})

test('merge refuses to replace a running listener and then changes nothing', async (t) => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:7060' }] })
  const other = createPool({ servers: [{ name: 'b', listen: '127.0.0.1:7061' }, { name: 'a', listen: '127.0.0.1:0' }, { name: 'c', listen: '127.0.0.1:0' }] })
  t.after(() => p.stop())
  await p.load('a')?.start()
  const before = [...p]
  assert.throws(() => p.merge(other), { code: 'FST_POOL_ADD', message: /"a" would replace running "a" \(127.0.0.1:0\); stop them first/ })
  assert.deepEqual([...p], before, 'not even the listeners that could be merged (b, c) were')
})

test('handler() replaces the handlers from the next restart (over HTTP)', async (t) => {
  const p = createPool({
    servers: [{ name: 'pub', listen: '127.0.0.1:0' }, { name: 'adm', listen: '127.0.0.1:0', handler: 'admin' }],
    handlers: { default: hello('v1'), admin: hello('admin v1') }
  })
  t.after(() => p.stop())
  await p.start()
  const pub = p.load('pub') as Listener
  assert.equal((await get(`${pub.url}/`)).body, 'v1')

  p.handler({ default: hello('v2'), admin: hello('admin v2') })
  assert.equal((await get(`${pub.url}/`)).body, 'v1', 'the running generation keeps serving until a restart')
  await p.restart()
  assert.equal((await get(`${pub.url}/`)).body, 'v2')
  assert.equal((await get(`${p.load('adm')?.url}/`)).body, 'admin v2')

  p.handler(hello('one for all'))
  await p.restart()
  assert.equal((await get(`${p.load('adm')?.url}/`)).body, 'one for all')
})

test('handler() rejects a map missing a key in use, or values that are not plugins', async () => {
  const p = createPool({
    servers: [{ name: 'pub', listen: '127.0.0.1:0' }, { name: 'adm', listen: '127.0.0.1:0', handler: 'admin' }],
    handlers: { default: hello('v1'), admin: hello('admin') }
  })
  assert.throws(() => p.handler({ default: hello('v2') }), (err: Error & { code: string, errors: ValidationIssue[] }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors, [{ path: 'handlers', message: 'has no key "admin" used by listener "adm"' }])
    return true
  })
  assert.throws(() => p.handler({ default: hello('v2'), admin: 'nope' } as never), { code: 'FST_POOL_VALIDATE', message: /handlers.admin: must be a Fastify plugin function/ })
  assert.throws(() => p.handler(42 as never), { code: 'FST_POOL_VALIDATE', message: /handlers: must be a Fastify plugin or an object/ })
  assert.throws(() => p.handler(undefined as never), { code: 'FST_POOL_PARAM_EMPTY' })
  // Nothing was replaced: a listener added now is checked against the old map.
  assert.throws(() => p.storeNew({ name: 'x', listen: '127.0.0.1:0', handler: 'other' }), { message: /known keys: default, admin/ })
  const res = await p.load('adm')?.inject('/')
  assert.equal(res?.body, 'admin')
})

test('factory: shared options and shared plugins for every listener', async (t) => {
  const seen: string[] = []
  const shared = async (app: FastifyInstance): Promise<void> => {
    app.get('/shared', async () => 'from the factory')
  }
  const p = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0', handler: 'b' }],
    handlers: { default: hello('a'), b: hello('b') },
    factory: async (config, options) => {
      seen.push(config.name)
      const app = Fastify({ ...options, genReqId: () => `req-${config.name}` })
      // Added at the root, so the hook reaches the listener's handler registered after it.
      app.addHook('onSend', async (request, reply) => { reply.header('x-request-id', request.id) })
      app.register(shared)
      return app
    }
  })
  t.after(() => p.stop())
  await p.start()
  assert.deepEqual(seen.sort(), ['a', 'b'])
  for (const name of ['a', 'b']) {
    const url = p.load(name)?.url
    const own = await get(`${url}/`)
    assert.equal(own.body, name, 'the listener\'s own handler is registered too')
    assert.equal(own.headers['x-request-id'], `req-${name}`, 'the factory\'s options')
    assert.equal((await get(`${url}/shared`)).body, 'from the factory')
  }
})

test('a factory that ignores the given options fails the start with FST_POOL_FACTORY', async (t) => {
  const p = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'ok', listen: '127.0.0.1:0' }],
    factory: (config, options) => config.name === 'a' ? Fastify({ logger: false }) : Fastify(options)
  })
  t.after(() => p.stop())
  await assert.rejects(p.start(), (err: Error & { code: string, errors: Array<{ name: string, error: Error & { code?: string } }> }) => {
    assert.equal(err.code, 'FST_POOL_START')
    assert.deepEqual(err.errors.map(e => [e.name, e.error.code]), [['a', 'FST_POOL_FACTORY']])
    assert.match(err.errors[0]?.error.message ?? '', /must return a Fastify instance built with the options it was given/)
    return true
  })
  assert.equal(p.isRunning(), false, 'the listener that did start was stopped again')

  const bad = createPool({ servers: [{ name: 'x', listen: '127.0.0.1:0' }], factory: () => ({}) as never })
  await assert.rejects(bad.start(), (err: Error & { errors: Array<{ error: { code?: string } }> }) => {
    assert.equal(err.errors[0]?.error.code, 'FST_POOL_FACTORY')
    return true
  })
})

test('the default factory gives each listener a pino child logger carrying its name and bind', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  const p = createPool({
    logger: pino({ level: 'info' }, stream),
    servers: [{ name: 'pub', listen: '127.0.0.1:0' }, { name: 'quiet', listen: '127.0.0.1:0', logLevel: 'warn' }],
    handlers: async (app: FastifyInstance) => {
      app.get('/', async (request) => { request.log.info('hello from a route'); return 'ok' })
    }
  })
  t.after(() => p.stop())
  await p.start()
  await get(`${p.load('pub')?.url}/`)
  await get(`${p.load('quiet')?.url}/`)
  await p.stop()

  const pub = lines.filter(l => l.listener === 'pub')
  assert.ok(pub.length > 0)
  for (const line of pub) assert.equal(line.bind, '127.0.0.1:0')
  const messages = pub.map(l => l.msg)
  assert.ok(messages.includes('listener started'))
  assert.ok(messages.includes('hello from a route'), 'request logs come through the child logger')
  assert.ok(messages.includes('incoming request'), 'Fastify\'s own request logs too')
  assert.ok(messages.includes('listener stopped'))
  const route = pub.find(l => l.msg === 'hello from a route')
  assert.equal(typeof route?.reqId, 'string', 'Fastify adds its request id to the child')
  assert.equal(lines.some(l => l.listener === 'quiet' && l.msg === 'hello from a route'), false, 'logLevel: warn silences info for that listener only')
})

test('with logger: true or pino options the pool makes its own logger; by default it logs nothing', () => {
  assert.equal(createPool().logger, undefined)
  assert.equal(createPool({ logger: false }).logger, undefined)
  const withTrue = createPool({ logger: true, defaults: { logLevel: 'error' } })
  assert.equal(withTrue.logger?.level, 'error')
  const withOptions = createPool({ logger: { level: 'debug' } })
  assert.equal(withOptions.logger?.level, 'debug')
  const given = pino({ level: 'warn' })
  assert.equal(createPool({ logger: given }).logger, given)
})
