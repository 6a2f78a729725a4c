// pool.monitor(): a real request to each listener's health route over its
// socket; periodic checks with rise/fall; monitor names; the status route.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyPool, { createPool, poolStatusRoute, type Factory, type MonitorReport, type MonitorStatus, type Pool, type PoolOptions } from 'fastify-pool'
import { get as send, type Reply } from './fixtures/client.ts'
import { deferred } from './fixtures/lifecycle.ts'

const TLS = { cert: 'test/fixtures/tls/server.crt', key: 'test/fixtures/tls/server.key' }

const get = (url: string): Promise<Reply> => send(url, { agent: false })

/**
 * A factory whose instances record every request path per listener, and whose
 * readiness answers 500 or never answers when the test says so.
 */
function probeable (): { factory: Factory, seen: Map<string, string[]>, arrivals: EventEmitter, mode: Map<string, 'ok' | 'fail' | 'hang'>, release: () => void } {
  const seen = new Map<string, string[]>()
  // Emits the listener name on each request it receives.
  const arrivals = new EventEmitter()
  const mode = new Map<string, 'ok' | 'fail' | 'hang'>()
  const hung = deferred()
  const factory: Factory = (config, options) => {
    const app = Fastify(options)
    app.addHook('onRequest', async (req, reply) => {
      const paths = seen.get(config.name) ?? []
      paths.push(req.url)
      seen.set(config.name, paths)
      arrivals.emit(config.name, req.url)
      if (req.url !== '/readyz') return
      const m = mode.get(config.name) ?? 'ok'
      if (m === 'fail') return reply.code(500).send({ status: 'broken' })
      if (m === 'hang') await hung.promise
    })
    return app
  }
  return { factory, seen, arrivals, mode, release: () => hung.resolve() }
}

function pool (t: { after: (fn: () => Promise<unknown> | void) => void }, options: PoolOptions): Pool {
  const p = createPool(options)
  t.after(() => p.stop())
  return p
}

const routes = async (app: FastifyInstance): Promise<void> => { app.get('/', async () => 'hello') }
const byName = (reports: MonitorReport[], name: string): MonitorReport => {
  const r = reports.find(x => x.name === name)
  assert.ok(r, `a report for ${name}`)
  return r
}

/** Resource counts, after letting closed handles go (they are released a loop turn or two after close). */
async function resources (): Promise<Record<string, number>> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
  const counts: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1
  return counts
}

test('monitor() reports a running, a stopped, a disabled, a failing and a hanging listener', async (t) => {
  const { factory, seen, mode, release } = probeable()
  t.after(release)
  const p = pool(t, {
    servers: [
      { name: 'up', listen: '127.0.0.1:0', handler: 'web' },
      { name: 'stopped', listen: 'localhost:0', handler: 'web' },
      { name: 'off', listen: '127.0.0.1:1', handler: 'web', disabled: true },
      { name: 'broken', listen: '[::1]:0', handler: 'web' },
      { name: 'stuck', listen: '127.0.0.1:0', handler: 'web' }
    ],
    handlers: { web: routes },
    factory
  })
  mode.set('broken', 'fail')
  mode.set('stuck', 'hang')
  await p.start()
  await p.load('stopped')?.stop()
  const version = { name: 'shop', release: '1.2.3', build: 'abc123' }
  const reports = await p.monitor(version, { timeout: 300 })
  assert.deepEqual(reports.map(r => r.name).sort(), ['broken', 'off', 'stopped', 'stuck', 'up'])

  const up = byName(reports, 'up')
  assert.equal(up.status, 'ok')
  assert.equal(up.monitor, 'fastify-pool:up')
  assert.equal(up.state, 'running')
  assert.equal(up.handler, 'web')
  assert.equal(up.bind, '127.0.0.1:0')
  assert.equal(up.expose, p.load('up')?.url)
  assert.equal(typeof up.latency, 'number')
  assert.ok((up.latency as number) > 0)
  assert.ok(up.uptime >= 0)
  assert.equal(up.message, undefined)
  assert.deepEqual(up.version, version)
  assert.match(up.runtime, /^node v\d+/)
  assert.ok(!Number.isNaN(Date.parse(up.checkedAt as string)))
  assert.equal(up.history.length, 1)
  // The check was a real request to the readiness route.
  assert.deepEqual(seen.get('up'), ['/readyz'])

  const stopped = byName(reports, 'stopped')
  assert.equal(stopped.status, 'ko')
  assert.equal(stopped.message, 'listener is stopped')
  assert.equal(stopped.latency, undefined, 'no request was made')
  assert.equal(stopped.uptime, 0)
  assert.equal(seen.get('stopped'), undefined)

  const off = byName(reports, 'off')
  assert.equal(off.status, 'ko')
  assert.equal(off.message, 'listener is disabled')

  const broken = byName(reports, 'broken')
  assert.equal(broken.status, 'ko')
  assert.equal(broken.message, 'GET /readyz answered 500')
  assert.equal(typeof broken.latency, 'number')
  assert.equal(broken.lastError?.message, 'GET /readyz answered 500')

  const stuck = byName(reports, 'stuck')
  assert.equal(stuck.status, 'ko')
  assert.match(stuck.message as string, /no answer within 300 ms/)
})

test('monitor({ strict: true }) rejects with FST_POOL_MONITOR naming each enabled listener that is ko', async (t) => {
  const { factory, mode } = probeable()
  const p = pool(t, {
    servers: [
      { name: 'good', listen: '127.0.0.1:0' },
      { name: 'bad', listen: 'localhost:0' },
      { name: 'off', listen: '127.0.0.1:1', disabled: true }
    ],
    handlers: routes,
    factory
  })
  await p.start()
  assert.equal((await p.monitor(undefined, { strict: true })).length, 3, 'nothing ko: it resolves')
  mode.set('bad', 'fail')
  await assert.rejects(p.monitor(undefined, { strict: true }), (err: Error & { code: string, errors: Array<{ name: string, error: Error }>, reports: MonitorReport[] }) => {
    assert.equal(err.code, 'FST_POOL_MONITOR')
    assert.deepEqual(err.errors.map(e => e.name), ['bad'])
    assert.match(err.message, /bad .*GET \/readyz answered 500/)
    assert.equal(err.reports.length, 3)
    return true
  })
})

test('monitor() arguments are checked', async (t) => {
  const p = pool(t, { servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: routes })
  await assert.rejects(p.monitor('1.0' as never, { timeout: -1, strict: 'yes' as never }), (err: Error & { code: string, errors: Array<{ path: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors.map(e => e.path), ['version', 'options.timeout', 'options.strict'])
    return true
  })
  await assert.rejects(p.startMonitor({ rise: 0, every: 5 } as never), (err: Error & { errors: Array<{ path: string }> }) => {
    assert.deepEqual(err.errors.map(e => e.path).sort(), ['options.every', 'options.rise'])
    return true
  })
  assert.equal(p.monitoring, false)
})

test('monitorNames() gives each listener a stable, unique name', async (t) => {
  const p = pool(t, {
    servers: [
      { name: 'a', listen: '127.0.0.1:0' },
      { name: 'b', listen: 'localhost:0' },
      { name: 'c', listen: '[::1]:0', disabled: true }
    ],
    handlers: routes
  })
  const names = p.monitorNames()
  assert.deepEqual(names, ['fastify-pool:a', 'fastify-pool:b', 'fastify-pool:c'])
  await p.start()
  await p.restart()
  assert.deepEqual(p.monitorNames(), names)
  assert.deepEqual((await p.monitor()).map(r => r.monitor), names)
})

test('a check speaks each listener\'s protocol: unix socket, HTTPS, HTTP/2 with and without TLS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-monitor-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const { factory, seen } = probeable()
  const p = pool(t, {
    servers: [
      { name: 'unix', listen: `unix:${join(dir, 'pool.sock')}` },
      { name: 'https', listen: '127.0.0.1:0', tls: TLS },
      { name: 'h2c', listen: 'localhost:0', http2: true },
      { name: 'h2', listen: '[::1]:0', http2: true, tls: TLS }
    ],
    handlers: routes,
    factory
  })
  await p.start()
  const reports = await p.monitor()
  for (const r of reports) {
    assert.equal(r.status, 'ok', `${r.name}: ${r.message ?? ''}`)
    assert.deepEqual(seen.get(r.name), ['/readyz'], r.name)
  }
})

test('a check uses readiness, else liveness, else GET / where any answer below 500 passes', async (t) => {
  const { factory, seen } = probeable()
  const p = pool(t, {
    servers: [
      { name: 'live-only', listen: '127.0.0.1:0', health: { readiness: false, liveness: '/alive' } },
      { name: 'none', listen: 'localhost:0', health: false }
    ],
    // No route at / : the 404 still shows that Fastify answers.
    handlers: async () => {},
    factory
  })
  await p.start()
  const reports = await p.monitor()
  assert.deepEqual(reports.map(r => r.status), ['ok', 'ok'])
  assert.deepEqual(seen.get('live-only'), ['/alive'])
  assert.deepEqual(seen.get('none'), ['/'])
})

test('periodic checks: ok after `rise` passes, ko after `fall` failures, warn in between; bounded history', async (t) => {
  const { factory, mode } = probeable()
  const p = pool(t, { servers: [{ name: 'flaky', listen: '127.0.0.1:0' }], handlers: routes, factory })
  await p.start()
  const changes: Array<[MonitorStatus | undefined, MonitorStatus]> = []
  let waiting: { status: MonitorStatus, resolve: () => void } | undefined
  const reach = (status: MonitorStatus): Promise<void> => new Promise(resolve => { waiting = { status, resolve } })
  await p.startMonitor({
    interval: 10,
    rise: 2,
    fall: 2,
    history: 3,
    onChange: (report, previous) => {
      changes.push([previous, report.status])
      if (waiting?.status === report.status) waiting.resolve()
    }
  })
  assert.equal(p.monitoring, true)
  // With no history, the first check decides.
  assert.deepEqual(changes, [[undefined, 'ok']])
  mode.set('flaky', 'fail')
  await reach('ko')
  mode.set('flaky', 'ok')
  await reach('ok')
  p.stopMonitor()
  assert.deepEqual(changes, [[undefined, 'ok'], ['ok', 'warn'], ['warn', 'ko'], ['ko', 'warn'], ['warn', 'ok']])
  const [report] = await p.monitor(undefined, { fresh: false })
  assert.equal(report?.status, 'ok')
  assert.ok((report?.history.length ?? 0) <= 3)
  assert.deepEqual(report?.history.slice(-2).map(h => [h.ok, h.status]), [[true, 'warn'], [true, 'ok']])
  assert.equal(report?.lastError?.message, 'GET /readyz answered 500')
  assert.equal(p.monitoring, false)
})

test('while periodic checks run, monitor() reports their last result without a new request', async (t) => {
  const { factory, seen } = probeable()
  const p = pool(t, { servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: routes, factory })
  await p.start()
  await p.startMonitor({ interval: 60_000 })
  const after = seen.get('a')?.length
  assert.equal(after, 1, 'the first round ran')
  assert.equal((await p.monitor()).at(0)?.status, 'ok')
  assert.equal(seen.get('a')?.length, after, 'no new request')
  await p.monitor(undefined, { fresh: true })
  assert.equal(seen.get('a')?.length, (after ?? 0) + 1)
  // A listener stopped between two rounds is reported ko at once.
  await p.load('a')?.stop()
  const [report] = await p.monitor()
  assert.equal(report?.status, 'ko')
  assert.equal(report?.message, 'listener is stopped')
})

test('pool.stop() ends the periodic checks, aborts the one in flight, and leaves no timer or socket behind', async (t) => {
  const baseline = await resources()
  const { factory, mode, arrivals, release } = probeable()
  t.after(release)
  const p = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'stuck', listen: 'localhost:0' }],
    handlers: routes,
    factory,
    defaults: { stopTimeout: 20_000 }
  })
  await p.start()
  mode.set('stuck', 'hang')
  const stuck = once(arrivals, 'stuck')
  const first = p.startMonitor({ interval: 5, timeout: 15_000 })
  await stuck
  assert.equal(p.monitoring, true)
  const reports = await p.stop()
  assert.equal(p.monitoring, false)
  // The hanging check was aborted, not cut at the drain deadline.
  assert.deepEqual(reports.map(r => r.cut), [0, 0])
  await first
  assert.deepEqual(await resources(), baseline)
})

test('the pool status route answers every report as JSON, and 503 in strict mode when the pool is ko', async (t) => {
  const p: Pool = pool(t, {
    servers: [
      { name: 'public', listen: '127.0.0.1:0', handler: 'public' },
      { name: 'admin', listen: 'localhost:0', handler: 'admin' }
    ],
    handlers: {
      public: routes,
      admin: async (app) => {
        await app.register(poolStatusRoute, { pool: p, version: { release: '2.0.0' } })
        await app.register(poolStatusRoute, { pool: p, path: '/pool/strict', strict: true })
      }
    }
  })
  await p.start()
  const admin = p.load('admin')?.url as string
  const answer = await get(`${admin}/pool`)
  assert.equal(answer.status, 200)
  const body = JSON.parse(answer.body) as { status: string, uptime: number, listeners: MonitorReport[] }
  assert.equal(body.status, 'ok')
  assert.equal(typeof body.uptime, 'number')
  assert.deepEqual(body.listeners.map(r => [r.name, r.status, r.version?.release]), [['public', 'ok', '2.0.0'], ['admin', 'ok', '2.0.0']])
  assert.equal((await get(`${admin}/pool/strict`)).status, 200)

  await p.load('public')?.stop()
  const down = await get(`${admin}/pool`)
  assert.equal(down.status, 200)
  assert.equal(JSON.parse(down.body).status, 'ko')
  const strict = await get(`${admin}/pool/strict`)
  assert.equal(strict.status, 503)
  assert.equal(JSON.parse(strict.body).listeners[0].message, 'listener is stopped')
})

test('the status route uses app.pool when the plugin is registered, and checks its options', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  app.register(fastifyPool, { servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: routes })
  app.register(poolStatusRoute)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await app.inject('/pool')
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json().listeners.map((r: MonitorReport) => [r.name, r.status]), [['a', 'ok']])

  const bad = Fastify()
  t.after(() => bad.close())
  bad.register(poolStatusRoute, { path: 'pool', strict: 1 as never, timeout: 0 })
  await assert.rejects(async () => { await bad.ready() }, (err: Error & { code: string, errors: Array<{ path: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors.map(e => e.path).sort(), ['path', 'pool', 'strict', 'timeout'])
    return true
  })
})
