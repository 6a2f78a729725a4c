// http2: true with TLS serves HTTP/2 and HTTP/1.1 (allowHTTP1) on one socket,
// restarts without dropping a session, and drains: sessions get a GOAWAY,
// open streams finish, idle sessions and connections close at once.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, constants, type ClientHttp2Session } from 'node:http2'
import { createPool, type Handlers, type Listener, type Pool } from 'fastify-pool'
import { certPath, deferred, keepAliveAgent, pem, send, tick, within } from './fixtures/lifecycle.ts'

const CA = pem('ca.crt')
const tls = { cert: certPath('server.crt'), key: certPath('server.key') }

function makePool (t: TestContext, handlers: Handlers, server: Record<string, unknown> = {}): Pool {
  const pool = createPool({
    servers: [{ name: 'h2', listen: '127.0.0.1:0', http2: true, tls, keepAliveTimeout: 60_000, ...server }],
    defaults: { stopTimeout: 30_000 },
    handlers
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

function session (t: TestContext, listener: Listener, ca: string | undefined = CA): ClientHttp2Session {
  const s = connect(listener.url!, ca === undefined ? {} : { ca })
  s.on('error', () => {})
  t.after(() => { s.destroy() })
  return s
}

interface H2Reply { status: number, body: string }

/** One request on an HTTP/2 session. */
function h2get (s: ClientHttp2Session, path: string): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':path': path })
    let status = 0
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.on('data', (chunk: string) => { body += chunk })
    // A reset stream may still emit 'end'; without a response it failed.
    const failed = (): Error => new Error(`stream closed without a response (code ${stream.rstCode})`)
    stream.on('end', () => status === 0 ? reject(failed()) : resolve({ status, body }))
    stream.on('error', reject)
    stream.on('close', () => { if (status === 0) reject(failed()) })
    stream.end()
  })
}

const versions: Handlers = async (app) => {
  app.get('/version', async (request) => request.raw.httpVersion)
}

test('an http2 listener with TLS serves HTTP/2 and HTTP/1.1 on the same port', async (t) => {
  const pool = makePool(t, versions)
  await pool.start()
  const listener = pool.load('h2')!
  assert.match(listener.url ?? '', /^https:/)
  const s = session(t, listener)
  assert.deepEqual(await h2get(s, '/version'), { status: 200, body: '2.0' })
  const h1 = await send(`${listener.url}/version`, { ca: CA })
  assert.equal(h1.status, 200)
  assert.equal(h1.body, '1.1')
})

test('restart on an http2 listener keeps open sessions; their next stream reaches the new generation', async (t) => {
  let builds = 0
  const pool = makePool(t, async (app) => { const id = ++builds; app.get('/who', async () => `gen ${id}`) })
  await pool.start()
  const listener = pool.load('h2')!
  const s = session(t, listener)
  let sessionClosed = false
  s.once('close', () => { sessionClosed = true })
  assert.equal((await h2get(s, '/who')).body, 'gen 1')
  await listener.restart()
  assert.equal((await h2get(s, '/who')).body, 'gen 2')
  assert.equal(sessionClosed, false)
})

test('stop() sends GOAWAY; the open stream finishes with 200; stop() resolves right after; a new stream is refused', async (t) => {
  const arrived = deferred()
  const release = deferred()
  t.after(() => release.resolve())
  const pool = makePool(t, async (app) => {
    app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'slow done' })
    app.get('/', async () => 'ok')
  })
  await pool.start()
  const listener = pool.load('h2')!
  const s = session(t, listener)
  const goaway = new Promise<number>(resolve => s.once('goaway', (code: number) => resolve(code)))
  const slow = h2get(s, '/slow')
  await within(10_000, arrived.promise, 'slow stream arrival')

  const events: string[] = []
  const stopping = pool.stop().then((reports) => { events.push('stopped'); return reports })
  assert.equal(await within(10_000, goaway, 'GOAWAY'), constants.NGHTTP2_NO_ERROR)
  await assert.rejects(h2get(s, '/'), 'no new stream on a session that got GOAWAY')
  await tick()
  assert.equal(events.length, 0, 'stop() waits for the open stream')

  events.push('released')
  release.resolve()
  assert.deepEqual(await within(10_000, slow, 'slow stream'), { status: 200, body: 'slow done' })
  const reports = await within(10_000, stopping, 'stop()')
  assert.deepEqual(events, ['released', 'stopped'])
  assert.equal(reports[0]?.cut, 0)
  assert.ok((reports[0]?.duration ?? Infinity) < 10_000)
})

test('idle HTTP/2 sessions and idle HTTP/1.1 keep-alive connections do not delay stop()', async (t) => {
  const pool = makePool(t, versions)
  await pool.start()
  const listener = pool.load('h2')!
  const s = session(t, listener)
  assert.equal((await h2get(s, '/version')).body, '2.0')
  const sessionClosed = new Promise<void>(resolve => s.once('close', () => resolve()))
  const agent = keepAliveAgent(true, CA)
  t.after(() => agent.destroy())
  const h1 = await send(`${listener.url}/version`, { agent })
  assert.equal(h1.body, '1.1')
  assert.equal(h1.headers.connection, 'keep-alive')
  const idle = Object.values(agent.freeSockets).flat()[0]
  assert.ok(idle, 'an idle HTTP/1.1 connection')
  const h1Closed = new Promise<void>(resolve => idle.once('close', () => resolve()))

  const reports = await within(20_000, pool.stop(), 'stop()')
  assert.ok((reports[0]?.duration ?? Infinity) < 10_000, `stop() took ${reports[0]?.duration} ms; keepAliveTimeout is 60 s`)
  assert.equal(reports[0]?.cut, 0)
  await within(5_000, Promise.all([sessionClosed, h1Closed]), 'both client connections closing')
})

test('at the deadline an HTTP/2 stream that never ends is cut and counted', async (t) => {
  const arrived = deferred()
  const never = deferred()
  t.after(() => never.resolve())
  const pool = makePool(t, async (app) => { app.get('/hang', async () => { arrived.resolve(); await never.promise; return 'late' }) })
  await pool.start()
  const listener = pool.load('h2')!
  const s = session(t, listener)
  const hang = h2get(s, '/hang').then(() => 'answered', (err: Error) => err.message)
  await within(10_000, arrived.promise, 'hanging stream arrival')
  const began = Date.now()
  const reports = await within(10_000, pool.stop({ timeout: 300 }), 'stop() with a 300 ms deadline')
  const took = Date.now() - began
  assert.equal(reports[0]?.cut, 1)
  assert.ok(took >= 290 && took < 5_000, `stop() took ${took} ms`)
  assert.equal(await hang, `stream closed without a response (code ${constants.NGHTTP2_CANCEL})`, 'the stream was reset with CANCEL')
  assert.equal(listener.status.inflight, 0)
})

test('an http2 listener without TLS serves h2c (prior knowledge) and stops', async (t) => {
  const pool = createPool({ servers: [{ name: 'h2c', listen: '127.0.0.1:0', http2: true }], handlers: versions })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const listener = pool.load('h2c')!
  assert.match(listener.url ?? '', /^http:/)
  const s = session(t, listener, undefined)
  assert.deepEqual(await h2get(s, '/version'), { status: 200, body: '2.0' })
  const reports = await within(10_000, pool.stop(), 'stop()')
  assert.equal(reports[0]?.cut, 0)
  assert.ok((reports[0]?.duration ?? Infinity) < 10_000)
})
