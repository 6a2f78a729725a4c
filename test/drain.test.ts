// stop(): refuse new requests, finish those in flight, close idle keep-alive
// connections at once, and cut what remains at one deadline. Real sockets.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { createPool, type Handlers, type Pool, type PoolOptions } from 'fastify-pool'
import { deferred, keepAliveAgent, memoryLogger, RawClient, send, tick, tryConnect, within } from './fixtures/lifecycle.ts'
import { owned, track } from './fixtures/owned.ts'

function makePool (t: TestContext, handlers: Handlers, options: Partial<PoolOptions> = {}, server: Record<string, unknown> = {}): Pool {
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0', keepAliveTimeout: 60_000, ...server }],
    defaults: { stopTimeout: 30_000 },
    handlers,
    ...options
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

function portOf (pool: Pool): number {
  return (pool.load('a')?.address as AddressInfo).port
}

test('a slow request in flight when stop() starts completes with 200 and Connection: close; stop() resolves right after it', async (t) => {
  const arrived = deferred()
  const release = deferred()
  const events: string[] = []
  const pool = makePool(t, async (app) => {
    app.addHook('onResponse', async (request) => { events.push(`responded ${request.url}`) })
    app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'slow done' })
  })
  t.after(() => release.resolve())
  await pool.start()
  const listener = pool.load('a')!
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const port = portOf(pool)
  const reply = send(`${listener.url}/slow`, { agent })
  await within(10_000, arrived.promise, 'slow request arrival')
  let releasedAt = 0
  const stopping = pool.stop().then((reports) => { events.push('stopped'); return { reports, at: Date.now() } })
  await tick()
  assert.equal(listener.state, 'draining')
  assert.equal(await tryConnect(port), 'ECONNREFUSED', 'no new connection is accepted while draining')
  assert.equal(events.length, 0, 'stop() waits for the request in flight')

  events.push('released')
  releasedAt = Date.now()
  release.resolve()
  const res = await within(10_000, reply, 'slow reply')
  assert.equal(res.status, 200)
  assert.equal(res.body, 'slow done')
  assert.equal(res.headers.connection, 'close', 'the client is told not to reuse the connection')

  const { reports, at } = await within(10_000, stopping, 'stop()')
  assert.deepEqual(events, ['released', 'responded /slow', 'stopped'])
  assert.equal(reports[0]?.cut, 0)
  // "Right after": far below the 30 s deadline, so it did not wait on a timer.
  assert.ok(at - releasedAt < 5_000, `stop() resolved ${at - releasedAt} ms after the last response`)
  assert.equal(listener.state, 'stopped')
})

test('a response whose headers went out before stop() keeps its keep-alive, and its connection closes as soon as it ends', async (t) => {
  const arrived = deferred()
  const release = deferred()
  const pool = makePool(t, async (app) => {
    app.get('/stream', async (_request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('first ')
      arrived.resolve()
      await release.promise
      reply.raw.end('last')
    })
  })
  t.after(() => release.resolve())
  await pool.start()
  const listener = pool.load('a')!
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const reply = send(`${listener.url}/stream`, { agent })
  await within(10_000, arrived.promise, 'streaming request arrival')
  const stopping = pool.stop()
  await tick()
  assert.equal(listener.state, 'draining')
  release.resolve()
  const res = await within(10_000, reply, 'streamed reply')
  assert.equal(res.body, 'first last')
  assert.equal(res.headers.connection, 'keep-alive', 'its headers were sent before the drain began')
  // Only closeIdleConnections(), called when the response closes, ends this
  // connection before keepAliveTimeout (60 s) and the deadline (30 s).
  const reports = await within(10_000, stopping, 'stop()')
  assert.ok((reports[0]?.duration ?? Infinity) < 5_000, `stop() took ${reports[0]?.duration} ms`)
  assert.equal(reports[0]?.cut, 0)
})

test('at the deadline a request that never finishes is cut: its socket is destroyed, the report and a warning count it', async (t) => {
  const arrived = deferred()
  const never = deferred()
  t.after(() => never.resolve())
  const { logger, lines } = memoryLogger('info')
  const pool = makePool(t, async (app) => {
    app.get('/hang', async () => { arrived.resolve(); await never.promise; return 'too late' })
    app.get('/ok', async () => 'ok')
  }, { logger })
  await pool.start()
  const listener = pool.load('a')!
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const reply = send(`${listener.url}/hang`, { agent }).then(() => 'answered', (err: NodeJS.ErrnoException) => err.code ?? err.message)
  await within(10_000, arrived.promise, 'hanging request arrival')
  const began = Date.now()
  const reports = await within(10_000, pool.stop({ timeout: 300 }), 'stop() with a 300 ms deadline')
  const took = Date.now() - began

  assert.equal(reports.length, 1)
  assert.equal(reports[0]?.cut, 1)
  assert.ok(took >= 290, `stop() resolved after ${took} ms, before the deadline`)
  assert.ok(took < 5_000, `stop() resolved ${took} ms after it began, long after the 300 ms deadline`)
  assert.equal(await reply, 'ECONNRESET', 'the client sees its connection destroyed')
  assert.equal(listener.status.inflight, 0)
  const warning = lines.find(l => l.level === 40 && l.cut === 1)
  assert.ok(warning, `a warning counts the cut request (logs: ${JSON.stringify(lines.map(l => l.msg))})`)
  assert.match(warning.msg, /deadline \(300 ms\).*cut 1 request/)
  assert.equal(warning.listener, 'a')
})

test('an idle keep-alive connection does not delay stop()', async (t) => {
  const pool = makePool(t, async (app) => { app.get('/', async () => 'hi') })
  await pool.start()
  const listener = pool.load('a')!
  assert.equal((listener.server as import('node:http').Server).keepAliveTimeout, 60_000)
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const res = await send(`${listener.url}/`, { agent })
  assert.equal(res.status, 200)
  assert.equal(res.headers.connection, 'keep-alive')
  const idle = Object.values(agent.freeSockets).flat()
  assert.equal(idle.length, 1, 'the agent keeps one idle connection')
  const clientClosed = new Promise<void>(resolve => idle[0]?.once('close', () => resolve()))

  const reports = await within(10_000, pool.stop(), 'stop() with an idle connection')
  assert.ok((reports[0]?.duration ?? Infinity) < 5_000, `stop() took ${reports[0]?.duration} ms; keepAliveTimeout is 60 s`)
  assert.equal(reports[0]?.cut, 0)
  await within(5_000, clientClosed, 'the idle client connection closing')
})

test('a new request arriving on a kept-alive connection during the drain gets 503 with Connection: close', async (t) => {
  let served = 0
  const pool = makePool(t, async (app) => { app.get('/hello', async () => { served++; return 'hello' }) })
  await pool.start()
  const listener = pool.load('a')!
  const client = new RawClient(portOf(pool))
  t.after(() => client.destroy())
  await client.connected()

  // One write: a whole request, then the start of the next one. Node parses
  // both before it answers the first, so the connection is not idle when the
  // drain begins (closeIdleConnections skips it) although no request is in flight.
  await client.write('GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n')
  const first = await within(10_000, client.response(), 'first response')
  assert.equal(first.status, 200)
  assert.equal(first.headers.connection, 'keep-alive')

  const stopping = pool.stop()
  await tick()
  assert.equal(listener.state, 'draining')
  await client.write('\r\n')
  const second = await within(10_000, client.response(), 'response during the drain')
  assert.equal(second.status, 503)
  assert.equal(second.headers.connection, 'close')
  assert.equal(JSON.parse(second.body).statusCode, 503)
  assert.equal(served, 1, 'the refused request never reached the handler')
  await within(10_000, client.closed, 'the server closing the connection')
  const reports = await within(10_000, stopping, 'stop()')
  assert.equal(reports[0]?.cut, 0)
})

test('handing off, a request arriving on a kept-alive connection during the drain is served, with Connection: close, after the preClose hooks ran', async (t) => {
  let served = 0
  const hooks: string[] = []
  const pool = makePool(t, async (app) => {
    app.addHook('preClose', async () => { hooks.push(app.poolClosing?.reason ?? '-') })
    app.get('/hello', async () => { served++; return 'hello' })
  })
  await pool.start()
  const listener = pool.load('a')!
  const client = new RawClient(portOf(pool))
  t.after(() => client.destroy())
  await client.connected()
  await client.write('GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n')
  assert.equal((await within(10_000, client.response(), 'first response')).status, 200)

  const stopping = listener.stop({ handOff: true })
  await tick()
  assert.equal(listener.state, 'draining')
  await client.write('\r\n')
  const second = await within(10_000, client.response(), 'response during the drain')
  assert.equal(second.status, 200)
  assert.equal(second.body, 'hello')
  assert.equal(second.headers.connection, 'close')
  assert.equal(served, 2)
  assert.deepEqual(hooks, ['handoff'])
  await within(10_000, client.closed, 'the server closing the connection')
  assert.equal((await within(10_000, stopping, 'stop()'))?.cut, 0)
})

test('readiness answers 200 while running and 503 during the drain', async (t) => {
  const pool = makePool(t, async () => {})
  await pool.start()
  const listener = pool.load('a')!
  assert.equal((await send(`${listener.url}/readyz`)).status, 200)

  const client = new RawClient(portOf(pool))
  t.after(() => client.destroy())
  await client.connected()
  await client.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /readyz HTTP/1.1\r\nHost: localhost\r\n')
  const running = await within(10_000, client.response(), 'readiness while running')
  assert.equal(running.status, 200)
  assert.equal(JSON.parse(running.body).status, 'ready')

  const stopping = pool.stop()
  await tick()
  await client.write('\r\n')
  const draining = await within(10_000, client.response(), 'readiness during the drain')
  assert.equal(draining.status, 503)
  assert.equal(draining.headers.connection, 'close')
  await within(10_000, stopping, 'stop()')
})

test('stop() with nothing in flight resolves at once and frees the port', async (t) => {
  const pool = makePool(t, async (app) => { app.get('/', async () => 'hi') })
  await pool.start()
  const port = portOf(pool)
  assert.equal((await send(`http://127.0.0.1:${port}/`)).status, 200)
  const reports = await within(10_000, pool.stop(), 'stop()')
  assert.ok((reports[0]?.duration ?? Infinity) < 5_000)
  assert.equal(await tryConnect(port), 'ECONNREFUSED')
})

test('a process that stopped its pool exits by itself (no handle outlives stop())', async () => {
  const script = fileURLToPath(new URL('./fixtures/stop-and-exit.ts', import.meta.url))
  const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
    track(execFile(...owned(process.execPath, ['--conditions=source', '--import', 'tsx', script]), { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : null), stdout, stderr })
    }))
  })
  assert.equal(code, 0, `the child did not exit cleanly on its own: ${stderr}`)
  assert.match(stdout, /stopped cut=1/)
})
