// stop() answers everything that reached the listener, in full: a response is
// done when its last byte left, not when end() was called; pipelined requests
// already received are answered; the app closes after its last request.
// Real sockets, raw clients where the test needs to control reading.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createPool, type Handlers, type Pool } from 'fastify-pool'
import { deferred, RawClient, within } from './fixtures/lifecycle.ts'

const BIG = 16 * 1024 * 1024

function makePool (t: TestContext, handlers: Handlers, server: Record<string, unknown> = {}): Pool {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0', ...server }], defaults: { stopTimeout: 30_000 }, handlers })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const portOf = (pool: Pool): number => (pool.load('a')?.address as AddressInfo).port

/** A client that sends one request and reads its answer slowly: `chunkDelay` ms after every chunk it receives. */
function slowReader (port: number, path: string, chunkDelay: number): { socket: Socket, received: () => number, ended: Promise<{ bytes: number, at: number, error?: string }> } {
  const socket = connect(port, '127.0.0.1')
  let bytes = 0
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    if (chunkDelay > 0) {
      socket.pause()
      setTimeout(() => socket.resume(), chunkDelay).unref()
    }
  })
  const ended = new Promise<{ bytes: number, at: number, error?: string }>(resolve => {
    socket.once('end', () => resolve({ bytes, at: Date.now() }))
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ bytes, at: Date.now(), error: err.code ?? err.message }))
    socket.once('close', () => resolve({ bytes, at: Date.now(), error: 'closed without end' }))
  })
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`)
  return { socket, received: () => bytes, ended }
}

function bigRoute (arrived: () => void): Handlers {
  const body = Buffer.alloc(BIG, 'x')
  return async (app) => {
    app.get('/big', async (_request, reply) => {
      arrived()
      // One write of the whole body: end() is called at once, long before the bytes leave.
      return reply.header('content-type', 'application/octet-stream').send(body)
    })
  }
}

test('a 16 MiB response to a slow reader is delivered whole while stop() runs; stop() resolves after the last byte', { timeout: 60_000 }, async (t) => {
  const arrived = deferred()
  const pool = makePool(t, bigRoute(() => arrived.resolve()))
  await pool.start()
  const client = slowReader(portOf(pool), '/big', 2)
  t.after(() => client.socket.destroy())
  await within(10_000, arrived.promise, 'request arrival')
  // Wait until the response is partly read: its end() has been called and bytes are queued.
  while (client.received() === 0) await new Promise(resolve => client.socket.once('data', resolve))

  const stopping = pool.stop({ timeout: 30_000 }).then(reports => ({ reports, at: Date.now() }))
  const end = await within(50_000, client.ended, 'the slow client reading to the end')
  const { reports, at } = await within(10_000, stopping, 'stop()')
  assert.equal(end.error, undefined, `the client saw ${end.error} after ${end.bytes} bytes`)
  // Headers plus the body.
  assert.ok(end.bytes > BIG, `the client got ${end.bytes} bytes of a ${BIG}-byte body`)
  assert.ok(at >= end.at, 'stop() resolved after the client had read the last byte')
  assert.equal(reports[0]?.cut, 0)
})

test('with a deadline shorter than the transfer, the response is cut and counted', { timeout: 30_000 }, async (t) => {
  const arrived = deferred()
  const pool = makePool(t, bigRoute(() => arrived.resolve()))
  await pool.start()
  // This client reads nothing after its first chunk.
  const client = slowReader(portOf(pool), '/big', 0)
  client.socket.once('data', () => client.socket.pause())
  t.after(() => client.socket.destroy())
  await within(10_000, arrived.promise, 'request arrival')
  const began = Date.now()
  const reports = await within(10_000, pool.stop({ timeout: 300 }), 'stop() with a 300 ms deadline')
  assert.ok(Date.now() - began >= 290, 'stop() waited for its deadline')
  assert.equal(reports[0]?.cut, 1, 'the one unfinished response was cut')
  assert.equal(pool.load('a')?.status.inflight, 0)
})

test('pipelined requests with stop() called from the first handler: every one is answered, onClose runs after the last', async (t) => {
  const events: string[] = []
  let stopping: Promise<unknown> | undefined
  const later = deferred()
  const pool = makePool(t, async (app) => {
    app.addHook('onResponse', async (request) => { events.push(`responded ${request.url}`) })
    app.addHook('onClose', async () => { events.push('onClose') })
    app.get('/first', async () => {
      stopping = pool.stop()
      later.resolve()
      return 'first'
    })
    // Still running when the drain begins.
    app.get('/second', async () => { await later.promise; await new Promise(resolve => setTimeout(resolve, 50)); return 'second' })
    app.get('/third', async () => { await later.promise; return 'third' })
  })
  await pool.start()
  const client = new RawClient(portOf(pool))
  t.after(() => client.destroy())
  await client.connected()
  await client.write(['/first', '/second', '/third'].map(p => `GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join(''))

  const replies = []
  for (let i = 0; i < 3; i++) replies.push(await within(10_000, client.response(), `response ${i + 1}`))
  assert.deepEqual(replies.map(r => [r.status, r.body]), [[200, 'first'], [200, 'second'], [200, 'third']])
  assert.equal(replies[2]?.headers.connection, 'close', 'the last response tells the client to close')
  assert.notEqual(replies[0]?.headers.connection, 'close', 'an earlier one does not: Node would close before the rest')
  await within(10_000, client.closed, 'the server closing the connection')
  const reports = await within(10_000, stopping as Promise<Array<{ cut: number }>>, 'stop()')
  assert.equal(reports[0]?.cut, 0)
  assert.deepEqual(events, ['responded /first', 'responded /second', 'responded /third', 'onClose'])
})

test('pipelined requests still queued at the deadline are each counted as cut', async (t) => {
  const never = deferred()
  t.after(() => never.resolve())
  let arrivedCount = 0
  const allArrived = deferred()
  const pool = makePool(t, async (app) => {
    app.addHook('onRequest', async () => { if (++arrivedCount === 3) allArrived.resolve() })
    app.get('/hang', async () => { await never.promise; return 'late' })
  })
  await pool.start()
  const client = new RawClient(portOf(pool))
  t.after(() => client.destroy())
  await client.connected()
  await client.write('GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(3))
  await within(10_000, allArrived.promise, 'three requests arriving')
  assert.equal(pool.load('a')?.status.inflight, 3)
  const reports = await within(10_000, pool.stop({ timeout: 100 }), 'stop()')
  assert.equal(reports[0]?.cut, 3)
})
