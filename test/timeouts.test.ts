// headersTimeout and requestTimeout take effect within about a second of
// their value (Node checks them on an interval the listener sets), and a
// client that stops reading is cut at the send timeout. Real sockets.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createPool, type ListenerConfig, type Pool } from 'fastify-pool'
import { memoryLogger, within } from './fixtures/lifecycle.ts'

async function started (t: TestContext, server: Partial<ListenerConfig>, logger?: unknown): Promise<{ pool: Pool, port: number }> {
  const big = Buffer.alloc(16 * 1024 * 1024, 'x')
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0', ...server }],
    handlers: async (app) => {
      app.get('/big', async (_request, reply) => reply.type('application/octet-stream').send(big))
      app.post('/upload', async () => 'ok')
    },
    ...(logger === undefined ? {} : { logger: logger as never })
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  return { pool, port: (pool.load('a')?.address as AddressInfo).port }
}

/** Writes `first`, then `chunk` every `every` ms; resolves with the ms until the server closed the connection. */
function trickle (t: TestContext, port: number, first: string, chunk: string, every: number): Promise<number> {
  const socket: Socket = connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.on('error', () => {})
  socket.resume()
  const began = Date.now()
  socket.write(first)
  const timer = setInterval(() => { if (socket.writable) socket.write(chunk) }, every)
  return new Promise(resolve => socket.once('close', () => { clearInterval(timer); resolve(Date.now() - began) }))
}

test('headersTimeout: 2000 closes a connection whose headers never end between 2 and 3.5 s', { timeout: 20_000 }, async (t) => {
  const { port } = await started(t, { headersTimeout: 2000, requestTimeout: 10_000 })
  const took = await within(15_000, trickle(t, port, 'GET / HTTP/1.1\r\nHost: localhost\r\n', 'X-Slow: yes\r\n', 200), 'the server closing the slow connection')
  assert.ok(took >= 2000 && took <= 3500, `closed after ${took} ms`)
})

test('requestTimeout: 3000 closes a connection whose body trickles in between 3 and 4.5 s', { timeout: 20_000 }, async (t) => {
  const { port } = await started(t, { headersTimeout: 1000, requestTimeout: 3000 })
  const took = await within(15_000, trickle(t, port, 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n', 'x', 200), 'the server closing the slow upload')
  assert.ok(took >= 3000 && took <= 4500, `closed after ${took} ms`)
})

// Without libuv's write queue figure (the suite's fallback run), the send timeout is not enforced, by design.
const sendTimeoutMeasured = process.env.FASTIFY_POOL_NODE_INTERNALS !== 'off'

test('a client that stops reading a large response is cut at the send timeout, with a warning', { timeout: 20_000, skip: !sendTimeoutMeasured && 'FASTIFY_POOL_NODE_INTERNALS=off: the send timeout is not enforced' }, async (t) => {
  const { logger, lines } = memoryLogger('info')
  const { pool, port } = await started(t, { sendTimeout: 1000 }, logger)
  // The server's side: a paused client would notice the close only when it reads again.
  const serverSide = new Promise<Socket>(resolve => pool.load('a')?.server?.once('connection', resolve))
  const socket = connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.on('error', () => {})
  // Read the first chunk, then nothing more.
  socket.once('data', () => socket.pause())
  socket.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n')
  const began = Date.now()
  const server = await serverSide
  await within(15_000, new Promise(resolve => server.once('close', resolve)), 'the server closing the stalled connection')
  const took = Date.now() - began
  assert.ok(took >= 1000 && took <= 3500, `closed after ${took} ms`)
  assert.ok(lines.some(l => l.level === 40 && /send timeout \(1000 ms\)/.test(String(l.msg))), 'a warning names the send timeout')
  assert.equal(pool.load('a')?.status.inflight, 0)
})

test('sendTimeout is inherited from defaults and 0 turns it off', async () => {
  const { validateConfig, BUILTIN_DEFAULTS } = await import('fastify-pool')
  const [a, b, c] = validateConfig({
    servers: [{ name: 'a', listen: ':1' }, { name: 'b', listen: ':2', sendTimeout: 0 }, { name: 'c', listen: ':3' }],
    defaults: { sendTimeout: 5000 }
  })
  assert.equal(a?.sendTimeout, 5000)
  assert.equal(b?.sendTimeout, 0)
  assert.equal(c?.sendTimeout, 5000)
  assert.equal(validateConfig({ servers: [{ name: 'd', listen: ':4' }] })[0]?.sendTimeout, BUILTIN_DEFAULTS.sendTimeout)
  assert.equal(BUILTIN_DEFAULTS.sendTimeout, 60_000)
})
