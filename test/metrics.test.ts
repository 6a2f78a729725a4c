// Prometheus metrics: what the exposition says after known requests on real
// sockets, across restarts and reloads, and that nothing is ever registered
// twice (restarts, reloads, clones, two pools, the plugin beside the library).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { Counter, Registry } from 'prom-client'
import fastifyMetrics from 'fastify-metrics'
import { createPool, fastifyPool, type Pool, type PoolOptions } from 'fastify-pool'
import { UNMATCHED_ROUTE } from 'fastify-pool/metrics'
import { certPath, deferred, keepAliveAgent, memoryLogger, pem, send, within } from './fixtures/lifecycle.ts'
import { declared, samples, value } from './fixtures/metrics.ts'

const routes = async (app: FastifyInstance): Promise<void> => {
  app.get('/items/:id', async () => ({ ok: true }))
  app.get('/boom', async () => { throw new Error('boom') })
  app.post('/items', async (_request, reply) => reply.code(201).send({ created: true }))
}

function pool (t: TestContext, options: PoolOptions): Pool {
  const p = createPool(options)
  t.after(() => p.stop({ timeout: 0 }))
  return p
}

const twoListeners = (extra: Partial<PoolOptions> = {}): PoolOptions => ({
  metrics: true,
  servers: [{ name: 'api', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
  handlers: routes,
  ...extra
})

async function scrape (p: Pool, listener = 'admin', path = '/metrics'): Promise<string> {
  const reply = await send(`${p.load(listener)?.url ?? ''}${path}`)
  assert.equal(reply.status, 200)
  assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  return reply.body
}

const count = (text: string, labels: Record<string, string>): number | undefined => value(text, 'http_request_duration_seconds_count', labels)

test('the exposition counts each request by listener, method, route pattern and status code, a 404 and a 500 included', async (t) => {
  const p = pool(t, twoListeners())
  await p.start()
  const api = p.load('api')?.url ?? ''
  for (const id of [1, 2, 3]) assert.equal((await send(`${api}/items/${id}`)).status, 200)
  assert.equal((await send(`${api}/nowhere/at/all`)).status, 404)
  assert.equal((await send(`${api}/boom`)).status, 500)
  assert.equal((await send(`${api}/items`, { method: 'POST' })).status, 201)
  assert.equal((await send(`${p.load('admin')?.url ?? ''}/healthz`)).status, 200)

  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', method: 'GET', route: '/items/:id', status_code: '200' }), 3, 'the route pattern, never the raw URL')
  assert.equal(count(text, { listener: 'api', method: 'GET', route: UNMATCHED_ROUTE, status_code: '404' }), 1)
  assert.equal(count(text, { listener: 'api', method: 'GET', route: '/boom', status_code: '500' }), 1)
  assert.equal(count(text, { listener: 'api', method: 'POST', route: '/items', status_code: '201' }), 1)
  assert.equal(count(text, { listener: 'admin', method: 'GET', route: '/healthz', status_code: '200' }), 1)
  assert.equal(samples(text).filter(s => s.name === 'http_request_duration_seconds_count' && s.labels.route?.includes('/items/1') === true).length, 0)
  // The histogram's buckets add up: the +Inf bucket is the count.
  assert.equal(value(text, 'http_request_duration_seconds_bucket', { listener: 'api', route: '/items/:id', status_code: '200', le: '+Inf' }), 3)
  const sum = value(text, 'http_request_duration_seconds_sum', { listener: 'api', route: '/items/:id', status_code: '200' }) ?? -1
  assert.ok(sum > 0 && sum < 5, `duration sum ${sum} s`)

  for (const listener of ['api', 'admin']) {
    assert.equal(value(text, 'fastify_pool_listener_up', { listener }), 1)
    assert.equal(value(text, 'fastify_pool_listener_generation', { listener }), 1)
    assert.equal(value(text, 'fastify_pool_restarts_total', { listener }), 0)
    assert.equal(value(text, 'fastify_pool_drain_cut_requests_total', { listener }), 0)
  }
  assert.equal(value(text, 'fastify_pool_requests_in_flight', { listener: 'api' }), 0)
  assert.equal(value(text, 'fastify_pool_requests_in_flight', { listener: 'admin' }), 1, 'the scrape itself is in flight')
  assert.equal(value(text, 'fastify_pool_reloads_total', { result: 'ok' }), 0)
  assert.equal(declared(text, 'process_cpu_user_seconds_total'), 1, 'the process metrics, once')
  assert.equal(value(text, 'fastify_pool_tls_certificate_expiry_timestamp_seconds', { listener: 'api' }), undefined, 'plain HTTP listeners have no certificate')
})

test('counts survive restarts; the generation and restart counters follow them; in-flight requests are counted', async (t) => {
  const release = deferred()
  const arrived = deferred()
  t.after(() => release.resolve())
  const p = pool(t, twoListeners({
    handlers: async (app) => {
      await routes(app)
      app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'late' })
    }
  }))
  await p.start()
  const api = p.load('api')?.url ?? ''
  await send(`${api}/items/1`)
  await send(`${api}/items/2`)
  const slow = send(`${api}/slow`)
  await within(10_000, arrived.promise, 'slow request')
  assert.equal(value(await scrape(p), 'fastify_pool_requests_in_flight', { listener: 'api' }), 1)
  release.resolve()
  assert.equal((await slow).status, 200)

  const reports = await p.restart()
  await Promise.all(reports.map(r => r.retired))
  await (p.load('api')?.restart())
  await send(`${api}/items/3`)
  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', route: '/items/:id', status_code: '200' }), 3, 'two before the restarts, one after')
  assert.equal(value(text, 'fastify_pool_listener_generation', { listener: 'api' }), 3)
  assert.equal(value(text, 'fastify_pool_restarts_total', { listener: 'api' }), 2)
  assert.equal(value(text, 'fastify_pool_restarts_total', { listener: 'admin' }), 1)
  assert.equal(value(text, 'fastify_pool_requests_in_flight', { listener: 'api' }), 0)
})

test('a reload that adds a listener: its metrics appear, the reload is counted, and a failed reload too', async (t) => {
  const servers = [{ name: 'api', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }]
  const p = pool(t, twoListeners({ servers }))
  await p.start()
  await send(`${p.load('api')?.url ?? ''}/items/1`)
  await p.reload({ servers: [...servers, { name: 'extra', listen: '127.0.0.1:0' }] })
  await send(`${p.load('extra')?.url ?? ''}/items/9`)
  await assert.rejects(p.reload({ servers: [...servers, { name: 'bad', listen: 'nowhere:x' }] }), { code: 'FST_POOL_VALIDATE' })
  await assert.rejects(p.reload({ servers: [servers[0] as never] }), (err: Error & { errors: Array<{ path: string, message: string }> }) => {
    assert.match(err.errors[0]?.message ?? '', /must keep the listener "admin"/)
    return true
  })

  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', route: '/items/:id' }), 1)
  assert.equal(count(text, { listener: 'extra', route: '/items/:id' }), 1)
  assert.equal(value(text, 'fastify_pool_listener_up', { listener: 'extra' }), 1)
  assert.equal(value(text, 'fastify_pool_reloads_total', { result: 'ok' }), 1)
  assert.equal(value(text, 'fastify_pool_reloads_total', { result: 'failed' }), 2)
})

test('a drain that reaches its deadline counts the requests it cut; a stopped listener is down', async (t) => {
  const arrived = deferred()
  const never = deferred()
  t.after(() => never.resolve())
  const p = pool(t, twoListeners({
    handlers: async (app) => { app.get('/hang', async () => { arrived.resolve(); await never.promise; return 'late' }) }
  }))
  await p.start()
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())
  const reply = send(`${p.load('api')?.url ?? ''}/hang`, { agent }).catch((err: NodeJS.ErrnoException) => err.code)
  await within(10_000, arrived.promise, 'hanging request')
  await p.filter('name', 'api').stop({ timeout: 100 })
  assert.equal(await reply, 'ECONNRESET')
  const text = await scrape(p)
  assert.equal(value(text, 'fastify_pool_drain_cut_requests_total', { listener: 'api' }), 1)
  assert.equal(value(text, 'fastify_pool_listener_up', { listener: 'api' }), 0)
  assert.equal(value(text, 'fastify_pool_listener_generation', { listener: 'api' }), 0)
})

test('a TLS listener exports when its certificate expires', async (t) => {
  const p = pool(t, {
    metrics: { listener: 'secure' },
    servers: [{ name: 'secure', listen: '127.0.0.1:0', tls: { cert: certPath('server.crt'), key: certPath('server.key') } }]
  })
  await p.start()
  const reply = await send(`${p.load('secure')?.url ?? ''}/metrics`, { ca: pem('ca.crt') })
  const expected = Date.parse(new X509Certificate(pem('server.crt')).validTo) / 1000
  assert.equal(value(reply.body, 'fastify_pool_tls_certificate_expiry_timestamp_seconds', { listener: 'secure' }), expected)
})

test('never "already registered": two pools, a clone, the plugin beside the library, a shared registry of your own', async (t) => {
  const a = pool(t, twoListeners())
  const b = pool(t, twoListeners())
  const clone = a.clone()
  t.after(() => clone.stop({ timeout: 0 }))
  const registry = new Registry()
  const mine = new Counter({ name: 'my_jobs_total', help: 'jobs', registers: [registry] })
  mine.inc(7)
  const c = pool(t, twoListeners({ metrics: { registry } }))
  const d = pool(t, { metrics: { registry, listener: 'other-admin', path: '/m' }, servers: [{ name: 'other-admin', listen: '127.0.0.1:0' }] })
  const app = Fastify()
  t.after(() => app.close())
  await app.register(fastifyPool, twoListeners({ servers: [{ name: 'api', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }] }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  await Promise.all([a.start(), b.start(), c.start(), d.start()])
  for (const p of [a, b, c]) await p.restart()
  await send(`${a.load('api')?.url ?? ''}/items/1`)

  const fromA = await scrape(a)
  const fromB = await scrape(b)
  assert.equal(count(fromA, { listener: 'api', route: '/items/:id' }), 1)
  assert.equal(count(fromB, { listener: 'api', route: '/items/:id' }), undefined, 'each pool has a registry of its own')
  assert.equal(declared(fromA, 'process_cpu_user_seconds_total'), 1)
  const shared = await scrape(c)
  assert.equal(value(shared, 'my_jobs_total'), 7, 'the user\'s own metrics are served with ours')
  assert.equal(declared(shared, 'http_request_duration_seconds'), 1)
  assert.deepEqual(samples(await scrape(d, 'other-admin', '/m')).filter(s => s.name === 'fastify_pool_listener_up').map(s => s.labels.listener).sort(), ['admin', 'api', 'other-admin'], 'two pools on one registry: one family, every listener')
  assert.equal(value(await scrape(app.pool), 'fastify_pool_listener_up', { listener: 'api' }), 1)
})

test('the metrics option is checked with the rest of the configuration', () => {
  const issues = (options: PoolOptions): string[] => {
    try {
      createPool(options)
    } catch (err) {
      return (err as { errors: Array<{ path: string, message: string }> }).errors.map(i => `${i.path}: ${i.message}`)
    }
    return []
  }
  assert.deepEqual(issues({ metrics: true, servers: [{ name: 'api', listen: ':0' }] }), ['metrics: serves on the listener named "admin" by default, and there is none (listeners: api); name one with metrics.listener'])
  assert.deepEqual(issues({ metrics: { listener: 'ops' }, servers: [{ name: 'api', listen: ':0' }] }), ['metrics.listener: names no listener (got "ops"; listeners: api)'])
  assert.deepEqual(issues({ metrics: { listener: 'api', path: 'metrics', colour: 1 } as never, servers: [{ name: 'api', listen: ':0' }] }).sort(), [
    'metrics.colour: is not a known option (known: listener, path, registry, defaultMetrics, exposition)',
    'metrics.path: must be a path starting with "/" (got "metrics")'
  ])
  assert.deepEqual(issues({ metrics: 'yes' as never, servers: [] }), ['metrics: must be true, or { listener, path, registry, defaultMetrics } (got "yes")'])
  assert.deepEqual(issues({ metrics: false, servers: [{ name: 'api', listen: ':0' }] }), [])
})

test('fastify-metrics inside the factory keeps working across restarts with clearRegisterOnInit', async (t) => {
  // Its metrics live in prom-client's global registry, which every
  // generation fills again: it clears it first. One listener only, since
  // that clears the others' metrics too (the pool's `metrics` has no such limit).
  const p = pool(t, {
    servers: [{ name: 'api', listen: '127.0.0.1:0' }],
    handlers: routes,
    factory: async (config, options) => {
      const app = Fastify(options)
      if (config.name === 'api') await app.register(fastifyMetrics as unknown as FastifyPluginAsync<{ endpoint: string, clearRegisterOnInit: boolean }>, { endpoint: '/metrics', clearRegisterOnInit: true })
      return app
    }
  })
  await p.start()
  const api = p.load('api')?.url ?? ''
  await send(`${api}/items/1`)
  await p.restart()
  await send(`${api}/items/2`)
  const reply = await send(`${api}/metrics`)
  assert.equal(reply.status, 200)
  assert.ok(samples(reply.body).some(s => s.name === 'http_request_duration_seconds_count'), 'fastify-metrics serves its route metrics')
})

test('with a logger, responses are recorded as Fastify logs them, and still logged', async (t) => {
  const { logger, lines } = memoryLogger('info')
  const p = pool(t, twoListeners({ logger }))
  await p.start()
  const api = p.load('api')?.url ?? ''
  for (const path of ['/items/1', '/items/2', '/nowhere', '/boom']) await send(`${api}${path}`)
  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', route: '/items/:id', status_code: '200' }), 2)
  assert.equal(count(text, { listener: 'api', route: UNMATCHED_ROUTE, status_code: '404' }), 1)
  assert.equal(count(text, { listener: 'api', route: '/boom', status_code: '500' }), 1)
  assert.equal(lines.filter(l => l.msg === 'request completed' && l.listener === 'api').length, 4, 'Fastify still logs every response')
})

test('an HTTP/2 listener is counted too', async (t) => {
  const { connect } = await import('node:http2')
  const p = pool(t, twoListeners({ servers: [{ name: 'api', listen: '127.0.0.1:0', http2: true }, { name: 'admin', listen: '127.0.0.1:0' }] }))
  await p.start()
  const session = connect(p.load('api')?.url ?? '')
  t.after(() => session.close())
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':path': `/items/${i + 1}` })
      stream.on('response', () => {})
      stream.resume()
      stream.on('end', resolve)
      stream.on('error', reject)
      stream.end()
    })
  }
  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', route: '/items/:id', status_code: '200' }), 3)
})

test('a request that a hook rejects before its handler is counted under its route', async (t) => {
  const p = pool(t, twoListeners({
    handlers: async (app) => {
      app.addHook('onRequest', async (request, reply) => { if (request.headers.authorization === undefined) await reply.code(401).send({ error: 'who are you' }) })
      app.get('/private/:id', async () => 'secret')
      app.post('/typed', { schema: { body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } } }, async () => 'ok')
    }
  }))
  await p.start()
  const api = p.load('api')?.url ?? ''
  assert.equal((await send(`${api}/private/1`)).status, 401)
  assert.equal((await send(`${api}/private/2`, { headers: { authorization: 'x' } })).status, 200)
  const typed = await fetch(`${api}/typed`, { method: 'POST', headers: { authorization: 'x', 'content-type': 'application/json' }, body: '{"n":"no"}' })
  assert.equal(typed.status, 400)
  await typed.text()
  const text = await scrape(p)
  assert.equal(count(text, { listener: 'api', route: '/private/:id', status_code: '401' }), 1)
  assert.equal(count(text, { listener: 'api', route: '/private/:id', status_code: '200' }), 1)
  assert.equal(count(text, { listener: 'api', route: '/typed', status_code: '400' }), 1)
})

test('requests made with inject() are counted too', async (t) => {
  const p = pool(t, twoListeners())
  await p.inject('api', '/items/1')
  await p.inject('api', '/nope')
  const text = await p.metrics?.exposition() ?? ''
  assert.equal(count(text, { listener: 'api', route: '/items/:id', status_code: '200' }), 1)
  assert.equal(count(text, { listener: 'api', route: UNMATCHED_ROUTE, status_code: '404' }), 1)
})
