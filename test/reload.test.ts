import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { createPool, type Handlers, type ListenerConfig, type Pool } from 'fastify-pool'
import type { FastifyInstance } from 'fastify'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TLS, freePort, get } from './fixtures/cli.ts'

const says = (word: string) => async (app: FastifyInstance): Promise<void> => { app.get('/', async () => word) }

function poolFor (t: { after: (fn: () => unknown) => void }, servers: ListenerConfig[], handlers: Handlers): Pool {
  const pool = createPool({ servers, handlers })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const url = (pool: Pool, name: string): string => {
  const u = pool.load(name)?.url
  assert.ok(u, `listener ${name} has a URL`)
  return u
}

test('reload leaves unchanged listeners alone, starts added ones and drains removed ones', async (t) => {
  const handlers = { a: says('a'), b: says('b'), c: says('c') }
  const pool = poolFor(t, [
    { name: 'keep', listen: '127.0.0.1:0', handler: 'a' },
    { name: 'gone', listen: '127.0.0.1:0', handler: 'b' }
  ], handlers)
  await pool.start()
  const keep = pool.load('keep')
  const keepServer = keep?.server
  const goneUrl = url(pool, 'gone')

  const report = await pool.reload({
    servers: [
      { name: 'keep', listen: '127.0.0.1:0', handler: 'a' },
      { name: 'new', listen: '127.0.0.1:0', handler: 'c' }
    ],
    handlers
  })

  assert.deepEqual(report, { added: ['new'], removed: ['gone'], changed: [], moved: [], unchanged: ['keep'] })
  assert.equal(pool.load('keep'), keep, 'the same listener object')
  assert.equal(pool.load('keep')?.server, keepServer, 'on the same server')
  assert.equal(pool.load('keep')?.status.generation, 1, 'not restarted')
  assert.equal(pool.has('gone'), false)
  assert.deepEqual(pool.list('name', 'name'), ['keep', 'new'])
  assert.equal((await get(`${url(pool, 'keep')}/`)).body, 'a')
  assert.equal((await get(`${url(pool, 'new')}/`)).body, 'c')
  await assert.rejects(get(`${goneUrl}/`), { code: 'ECONNREFUSED' })
})

test('reload moves a listener to its new address before the old one drains its requests', async (t) => {
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  let entered!: () => void
  const inside = new Promise<void>(resolve => { entered = resolve })
  const handlers = {
    old: async (app: FastifyInstance) => { app.get('/', async () => { entered(); await gate; return 'old' }) },
    new: says('new')
  }
  // The pool's log tells when the new address is bound.
  let onStarted!: (url: string) => void
  const started = new Promise<string>(resolve => { onStarted = resolve })
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      const line = JSON.parse(chunk.toString()) as { msg: string, bind?: string, url?: string }
      if (line.msg === 'listener started' && line.bind === 'localhost:0' && line.url !== undefined) onStarted(line.url)
      done()
    }
  })
  const pool = createPool({ servers: [{ name: 'api', listen: '127.0.0.1:0', handler: 'old' }], handlers, logger: pino(stream) })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const oldUrl = url(pool, 'api')
  const slow = get(`${oldUrl}/`)
  await inside

  const reloading = pool.reload({ servers: [{ name: 'api', listen: 'localhost:0', handler: 'new' }], handlers })
  const newUrl = await started
  assert.equal((await get(`${newUrl}/`)).body, 'new', 'the new address answers while the old one still holds a request')
  release()
  const report = await reloading
  assert.deepEqual(report.moved, ['api'])
  assert.equal((await slow).body, 'old', 'the in-flight request on the old address completed')
  const moved = url(pool, 'api')
  assert.notEqual(moved, oldUrl)
  assert.equal((await get(`${moved}/`)).body, 'new')
  await assert.rejects(get(`${oldUrl}/`), { code: 'ECONNREFUSED' })
})

test('an invalid configuration changes nothing', async (t) => {
  const handlers = { a: says('a') }
  const pool = poolFor(t, [{ name: 'a', listen: '127.0.0.1:0', handler: 'a' }], handlers)
  await pool.start()
  const before = url(pool, 'a')
  await assert.rejects(pool.reload({
    servers: [
      { name: 'a', listen: 'nope', handler: 'a' },
      { name: 'b', listen: '127.0.0.1:0', handler: 'missing' }
    ],
    handlers
  }), (err: Error & { code: string, errors: Array<{ path: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors.map(e => e.path), ['servers[0].listen', 'servers[1].handler'])
    return true
  })
  assert.deepEqual(pool.list('name', 'name'), ['a'])
  assert.equal(url(pool, 'a'), before)
  assert.equal((await get(`${before}/`)).body, 'a')
})

test('a listener that cannot start rolls the whole reload back', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise(resolve => blocker.close(resolve)))
  const busy = (blocker.address() as { port: number }).port

  const handlers = { a: says('a'), b: says('b') }
  const pool = poolFor(t, [
    { name: 'a', listen: '127.0.0.1:0', handler: 'a' },
    { name: 'b', listen: '127.0.0.1:0', handler: 'b' }
  ], handlers)
  await pool.start()
  const aUrl = url(pool, 'a')
  const bUrl = url(pool, 'b')

  await assert.rejects(pool.reload({
    servers: [
      { name: 'a', listen: '127.0.0.1:0', handler: 'a' },
      { name: 'fresh', listen: '127.0.0.1:0', handler: 'b' },
      { name: 'clash', listen: `127.0.0.1:${busy}`, handler: 'b' }
    ],
    handlers
  }), (err: Error & { code: string }) => {
    assert.equal(err.code, 'FST_POOL_RELOAD')
    assert.match(err.message, /clash/)
    assert.match(err.message, /EADDRINUSE/)
    return true
  })
  assert.deepEqual(pool.list('name', 'name'), ['a', 'b'], 'the pool holds what it held')
  assert.equal((await get(`${aUrl}/`)).body, 'a')
  assert.equal((await get(`${bUrl}/`)).body, 'b', 'b was not removed')
  assert.equal(pool.status().every(s => s.state === 'running'), true)
})

test('a new listener on the address of a removed one starts once that one has stopped', async (t) => {
  const port = await freePort()
  const handlers = { a: says('a'), b: says('b') }
  const pool = poolFor(t, [{ name: 'old-name', listen: `127.0.0.1:${port}`, handler: 'a' }], handlers)
  await pool.start()
  const report = await pool.reload({ servers: [{ name: 'new-name', listen: `127.0.0.1:${port}`, handler: 'b' }], handlers })
  assert.deepEqual(report.added, ['new-name'])
  assert.deepEqual(report.removed, ['old-name'])
  assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'b')
})

test('a changed listener serves its new handler on the same address', async (t) => {
  const port = await freePort()
  const handlers1 = { main: says('v1') }
  const handlers2 = { main: says('v2') }
  const pool = poolFor(t, [{ name: 'a', listen: `127.0.0.1:${port}`, handler: 'main' }], handlers1)
  await pool.start()
  assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'v1')
  const listener = pool.load('a')
  const server = listener?.server
  const report = await pool.reload({ servers: [{ name: 'a', listen: `127.0.0.1:${port}`, handler: 'main', bodyLimit: 1024 }], handlers: handlers2 })
  assert.deepEqual(report.changed, ['a'])
  assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'v2')
  assert.equal(pool.load('a')?.config.bodyLimit, 1024)
  assert.equal(pool.load('a'), listener, 'the same listener')
  assert.equal(pool.load('a')?.server, server, 'on the same socket: no downtime')
  assert.equal(pool.load('a')?.status.generation, 2, 'a new generation')
})

test('a change the live socket cannot make (HTTP to HTTPS) replaces the listener', async (t) => {
  const handlers = { main: says('x') }
  const pool = poolFor(t, [{ name: 'a', listen: '127.0.0.1:0', handler: 'main' }], handlers)
  await pool.start()
  const before = pool.load('a')
  const report = await pool.reload({
    servers: [{ name: 'a', listen: '127.0.0.1:0', handler: 'main', tls: { cert: join(TLS, 'server.crt'), key: join(TLS, 'server.key') } }],
    handlers
  })
  assert.deepEqual(report.changed, ['a'])
  assert.notEqual(pool.load('a'), before)
  assert.equal(before?.isRunning, false)
  const reply = await get(`${url(pool, 'a')}/`, { ca: readFileSync(join(TLS, 'ca.crt'), 'utf8') })
  assert.equal(reply.body, 'x')
  assert.match(url(pool, 'a'), /^https:/)
})

test('reload on a stopped pool only swaps the configuration', async (t) => {
  const handlers = { a: says('a') }
  const pool = poolFor(t, [{ name: 'a', listen: '127.0.0.1:0', handler: 'a' }], handlers)
  const report = await pool.reload({ servers: [{ name: 'a', listen: '127.0.0.1:0', handler: 'a' }, { name: 'b', listen: '127.0.0.1:0', handler: 'a' }], handlers })
  assert.deepEqual(report.added, ['b'])
  assert.equal(pool.isRunning(), false)
  await pool.start()
  assert.equal((await get(`${url(pool, 'b')}/`)).body, 'a')
})

test('reload compares configurations exactly: a new fastify.genReqId is a change (the new ids are served), the same function object is not', async (t) => {
  const first = (): string => 'first-id'
  const second = (): string => 'second-id'
  const echo = async (app: FastifyInstance): Promise<void> => { app.get('/', async (request) => request.id) }
  const pool = poolFor(t, [{ name: 'a', listen: '127.0.0.1:0', fastify: { genReqId: first } }], echo)
  await pool.start()
  assert.equal((await get(`${url(pool, 'a')}/`)).body, 'first-id')

  const same = await pool.reload({ servers: [{ name: 'a', listen: '127.0.0.1:0', fastify: { genReqId: first } }], handlers: echo })
  assert.deepEqual({ changed: same.changed, unchanged: same.unchanged }, { changed: [], unchanged: ['a'] }, 'the same function: unchanged')

  const changed = await pool.reload({ servers: [{ name: 'a', listen: '127.0.0.1:0', fastify: { genReqId: second } }], handlers: echo })
  assert.deepEqual({ changed: changed.changed, unchanged: changed.unchanged }, { changed: ['a'], unchanged: [] }, 'another function: changed')
  assert.equal((await get(`${url(pool, 'a')}/`)).body, 'second-id', 'the new ids are served')

  // A key whose value is undefined is as good as no key (as it was when configurations were compared as JSON).
  const base = { name: 'a', listen: '127.0.0.1:0', fastify: { genReqId: second } }
  const again = await pool.reload({ servers: [{ ...base, fastify: { ...base.fastify, requestIdHeader: undefined } }], handlers: echo })
  assert.deepEqual(again.unchanged, ['a'], 'an undefined key is no key')
})
