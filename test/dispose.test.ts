// `await using pool = createPool(...)` stops the pool at the end of the block.
// Node 20 has Symbol.asyncDispose; tsx (esbuild) lowers the `await using`
// syntax, so these tests use it directly on every supported Node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { createPool, type Pool } from 'fastify-pool'
import { deferred, send, tick, tryConnect, within } from './fixtures/lifecycle.ts'

const handlers = async (app: import('fastify').FastifyInstance) => { app.get('/', async () => 'ok') }
const portOf = (pool: Pool, name = 'a'): number => (pool.load(name)!.address as AddressInfo).port

test('this Node has Symbol.asyncDispose, and pools and listeners implement it', () => {
  assert.equal(typeof Symbol.asyncDispose, 'symbol')
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers })
  assert.equal(typeof pool[Symbol.asyncDispose], 'function')
  assert.equal(typeof pool.load('a')![Symbol.asyncDispose], 'function')
})

test('await using stops the pool at the end of the block', async () => {
  let port = 0
  let outside: Pool | undefined
  {
    await using pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }], handlers })
    outside = pool
    await pool.start()
    port = portOf(pool)
    assert.equal((await send(`http://127.0.0.1:${port}/`)).body, 'ok')
  }
  assert.equal(outside.isRunning(), false)
  for (const l of outside) assert.equal(l.state, 'stopped')
  assert.equal(await tryConnect(port), 'ECONNREFUSED')
})

test('await using stops the pool when the block throws, and the error still propagates', async () => {
  let port = 0
  let outside: Pool | undefined
  await assert.rejects(async () => {
    await using pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers })
    outside = pool
    await pool.start()
    port = portOf(pool)
    throw new Error('boom')
  }, /boom/)
  assert.equal(outside?.isRunning(), false)
  assert.equal(await tryConnect(port), 'ECONNREFUSED')
})

test('disposal drains: a request in flight completes before the block is left', async (t) => {
  const arrived = deferred()
  const release = deferred()
  t.after(() => release.resolve())
  const events: string[] = []
  let reply: Promise<{ status: number }> | undefined
  const block = (async () => {
    await using pool = createPool({
      servers: [{ name: 'a', listen: '127.0.0.1:0' }],
      handlers: async (app) => { app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'done' }) }
    })
    await pool.start()
    reply = send(`${pool.load('a')!.url}/slow`).then((r) => { events.push('reply'); return r })
    await arrived.promise
  })().then(() => { events.push('disposed') })

  await within(10_000, arrived.promise, 'slow request arrival')
  await tick()
  assert.equal(events.length, 0, 'disposal waits for the request in flight')
  release.resolve()
  await within(10_000, block, 'the block')
  assert.equal((await reply!).status, 200)
  assert.ok(events.includes('disposed'))
})

test('pool[Symbol.asyncDispose]() called directly stops the pool; so does await using on a listener', async () => {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }], handlers })
  await pool.start()
  const ports = [portOf(pool, 'a'), portOf(pool, 'b')]
  await pool[Symbol.asyncDispose]()
  assert.equal(pool.isRunning(), false)
  for (const port of ports) assert.equal(await tryConnect(port), 'ECONNREFUSED')

  await pool.start()
  const port = portOf(pool, 'b')
  {
    await using listener = pool.load('b')!
    assert.equal(listener.isRunning, true)
  }
  assert.equal(pool.load('b')!.state, 'stopped')
  assert.equal(pool.load('a')!.state, 'running', 'only the listener in the block was disposed')
  assert.equal(await tryConnect(port), 'ECONNREFUSED')
  await pool.stop()
})
