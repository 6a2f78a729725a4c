// What the pool relies on in Fastify, stated against the Fastify installed:
// 5 from the lockfile, the newest 6 in CI's Fastify 6 phase (.ci/run). A
// listener owns its Node server and hands it to each generation's instance
// through serverFactory; the instance never listens, and its close() must
// leave that server and its connections to the next generation. A canary
// for Fastify releases, as node-internals.test.ts is for Node's.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, createServer as createH2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { fastifyPool } from 'fastify-pool'
import { pino } from 'pino'
import { withPool } from '../packages/fastify-pool-cli/src/with-pool.ts'
import { get } from './fixtures/client.ts'

type Handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void

interface Given<S> {
  app: FastifyInstance
  /** The handler Fastify gave the factory. */
  handler: Handler
  server: S
}

/** An instance given `server` through serverFactory, with `GET /` answering `answer`, ready. */
async function instanceOn<S extends Server | Http2Server> (server: S, answer: string, options: object = {}): Promise<Given<S>> {
  let handler: Handler | undefined
  const app = Fastify({ ...options, serverFactory: (h: Handler) => { handler = h; return server } } as FastifyServerOptions)
  app.get('/', async () => answer)
  await app.ready()
  assert.ok(handler !== undefined)
  return { app, handler, server }
}

/** Listen on 127.0.0.1, as the pool does itself; closed after the test. */
async function listen (t: TestContext, server: Server | Http2Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  return (server.address() as AddressInfo).port
}

/** GET / on a keep-alive agent: the body, and whether the request went on a connection opened before. */
function getOn (agent: Agent, port: number): Promise<{ status: number, body: string, reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('serverFactory: Fastify calls it once, at construction, with its request handler; app.server is what it returned; the instance adds one clientError listener to it and no request listener, and never listens', async (t) => {
  const server = createServer()
  const counts = (): Record<string, number> => Object.fromEntries(server.eventNames().map(e => [String(e), server.listenerCount(e)]))
  const before = counts()
  const handlers: Handler[] = []
  const app = Fastify({ serverFactory: (h: Handler) => { handlers.push(h); return server } } as FastifyServerOptions)
  t.after(() => app.close())
  assert.equal(handlers.length, 1)
  assert.equal(app.server, server)
  app.get('/', async () => 'routed')
  await app.ready()
  // The pool attaches the handler itself, and moves the instance's clientError listeners from the server at each swap (generation.ts): any other would pile up, one per generation.
  assert.deepEqual(counts(), { ...before, clientError: (before.clientError ?? 0) + 1 })
  assert.equal(server.listening, false, 'ready() does not listen')
  server.on('request', handlers[0] as Handler)
  const port = await listen(t, server)
  const reply = await get(`http://127.0.0.1:${port}/`, { agent: false })
  assert.deepEqual([reply.status, reply.body], [200, 'routed'])
})

for (const forceCloseConnections of [undefined, true, 'idle'] as const) {
  test(`close() of an instance given a server it never listened on closes neither the server nor a keep-alive connection (forceCloseConnections ${forceCloseConnections === undefined ? 'unset' : String(forceCloseConnections)}): the next instance answers on it`, async (t) => {
    const server = createServer()
    const options = forceCloseConnections === undefined ? {} : { forceCloseConnections }
    const first = await instanceOn(server, 'first', options)
    server.on('request', first.handler)
    const port = await listen(t, server)
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.after(() => agent.destroy())
    assert.deepEqual(await getOn(agent, port), { status: 200, body: 'first', reused: false })
    // A restart: the next generation takes the server's requests, then the old instance closes.
    const next = await instanceOn(server, 'next', options)
    t.after(() => next.app.close())
    server.removeListener('request', first.handler)
    server.on('request', next.handler)
    await first.app.close()
    assert.equal(server.listening, true)
    assert.deepEqual(await getOn(agent, port), { status: 200, body: 'next', reused: true })
  })
}

test('close() of an HTTP/2 instance given a server it never listened on (forceCloseConnections true) leaves its sessions open: the next instance answers on the same session', async (t) => {
  const server = createH2Server()
  const first = await instanceOn(server, 'first', { http2: true, forceCloseConnections: true })
  server.on('request', first.handler)
  const port = await listen(t, server)
  const session = connect(`http://127.0.0.1:${port}`)
  t.after(() => session.destroy())
  const getH2 = (): Promise<string> => new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/' })
    let body = ''
    stream.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve(body)).on('error', reject)
  })
  assert.equal(await getH2(), 'first')
  const next = await instanceOn(server, 'next', { http2: true, forceCloseConnections: true })
  t.after(() => next.app.close())
  server.removeListener('request', first.handler)
  server.on('request', next.handler)
  let goaway = false
  session.once('goaway', () => { goaway = true })
  await first.app.close()
  assert.equal(await getH2(), 'next')
  assert.equal(goaway, false)
  assert.equal(session.closed, false)
})

for (const return503OnClosing of [false, undefined] as const) {
  test(`return503OnClosing ${return503OnClosing === undefined ? 'unset (Fastify\'s default)' : String(return503OnClosing)}: a request that reaches an instance whose close() is held in an onClose hook is ${return503OnClosing === false ? 'served (a hand-off serves the requests that still arrive)' : 'answered 503 (so the request did reach it while closing)'}`, async (t) => {
    const server = createServer()
    let handler: Handler | undefined
    const app = Fastify({ ...(return503OnClosing === undefined ? {} : { return503OnClosing }), serverFactory: (h: Handler) => { handler = h; return server } } as FastifyServerOptions)
    app.get('/', async () => 'served')
    let reached!: () => void
    const holding = new Promise<void>(resolve => { reached = resolve })
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    app.addHook('onClose', (_instance, done) => { reached(); held.then(() => done(), done) })
    await app.ready()
    server.on('request', handler as Handler)
    const port = await listen(t, server)
    const closed = app.close()
    await holding
    const reply = await get(`http://127.0.0.1:${port}/`, { agent: false }).finally(release)
    await closed
    assert.equal(reply.status, return503OnClosing === false ? 200 : 503)
  })
}

test('close() runs every preClose hook, then the onClose hooks newest first: one added by the plugin registered last runs before the others, and holds them while it waits', async (t) => {
  const order: string[] = []
  const app = Fastify()
  t.after(() => app.close())
  app.addHook('preClose', (done) => { order.push('preClose root'); done() })
  app.register(async (child) => {
    child.addHook('preClose', (done) => { order.push('preClose plugin'); done() })
    child.addHook('onClose', (_i, done) => { order.push('onClose first plugin'); done() })
  })
  app.register(async (child) => {
    child.addHook('onClose', (_i, done) => { order.push('onClose second plugin'); done() })
  })
  let reached!: () => void
  const holding = new Promise<void>(resolve => { reached = resolve })
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  // As closing.ts installs its hold: a plugin without encapsulation, registered after every other one.
  app.register(Object.assign(function hold (instance: FastifyInstance, _opts: unknown, done: (err?: Error) => void) {
    instance.addHook('onClose', (_i, next) => { order.push('hold'); reached(); held.then(() => next(), next) })
    done()
  }, { [Symbol.for('skip-override')]: true }))
  await app.ready()
  const closed = app.close()
  await holding
  assert.deepEqual(new Set(order.slice(0, 2)), new Set(['preClose root', 'preClose plugin']))
  assert.deepEqual(order.slice(2), ['hold'])
  release()
  await closed
  assert.deepEqual(order.slice(3), ['onClose second plugin', 'onClose first plugin'])
})

test('Fastify exports LogController, and calls requestCompleted of the logController it is given once per response when it has a logger (observability/recording.ts)', async (t) => {
  const Base = Reflect.get(Fastify, 'LogController') as undefined | (new (options: object) => { requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void })
  assert.equal(typeof Base, 'function')
  const completed: Array<[string, number]> = []
  class Recording extends (Base as NonNullable<typeof Base>) {
    override requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void {
      completed.push([request.url, reply.statusCode])
      super.requestCompleted(error, request, reply, metadata)
    }
  }
  const loggerInstance = pino({ level: 'info' }, { write () {} })
  // Fastify's typings describe its own class, which they do not export.
  const app = Fastify({ loggerInstance, logController: new Recording({}) } as unknown as FastifyServerOptions)
  t.after(() => app.close())
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as AddressInfo).port
  await get(`http://127.0.0.1:${port}/`, { agent: false })
  await get(`http://127.0.0.1:${port}/missing`, { agent: false })
  assert.deepEqual(completed, [['/', 200], ['/missing', 404]])
})

// Fastify refuses a plugin whose fastify-plugin metadata names other
// versions than its own (outside its pre-releases), with the semver it
// depends on: the same check, on the releases the peer range admits.
const semver = createRequire(createRequire(import.meta.url).resolve('fastify'))('semver') as { satisfies: (version: string, range: string) => boolean }
const PEER = (JSON.parse(readFileSync(new URL('../packages/fastify-pool/package.json', import.meta.url), 'utf8')) as { peerDependencies: { fastify: string } }).peerDependencies.fastify
const RELEASES = ['4.29.0', '5.0.0', '5.99.0', '6.0.0', '6.99.0', '7.0.0']

function admitted (range: string): string[] {
  return RELEASES.filter(v => semver.satisfies(v, range))
}

test('the peer range admits the releases of Fastify 5 and 6, and the pre-releases of 6', () => {
  assert.deepEqual(admitted(PEER), ['5.0.0', '5.99.0', '6.0.0', '6.99.0'])
  assert.equal(semver.satisfies('6.0.0-alpha.4', PEER), true)
})

test('fastify-pool-cli\'s handler wrapper names the Fastify versions the peer range admits', () => {
  const wrapped = withPool(async () => {}, () => { throw new Error('not called') }, {}) as unknown as Record<symbol, { fastify: string } | undefined>
  assert.deepEqual(admitted(wrapped[Symbol.for('plugin-meta')]?.fastify ?? ''), admitted(PEER))
})

test('the fastify-pool plugin names the Fastify versions the peer range admits', () => {
  const meta = (fastifyPool as unknown as Record<symbol, { fastify: string } | undefined>)[Symbol.for('plugin-meta')]
  assert.deepEqual(admitted(meta?.fastify ?? ''), admitted(PEER))
})
