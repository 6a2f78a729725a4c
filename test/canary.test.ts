// Canary generations (docs/canary.md): a new generation serves a share of a
// listener's requests beside the serving one, over real sockets, and the
// judge promotes it or rolls it back; nothing is lost either way.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'node:http'
import { createPool, type CanaryEvent, type Pool } from 'fastify-pool'
import { deferred } from './fixtures/lifecycle.ts'
import { openClient, pluginHandler, type Builds, type Client } from './fixtures/websocket.ts'

/** The code the listener serves: a version, and how it answers. */
interface Code { version: number, fail?: number, delay?: number }

function makePool (t: TestContext, code: { current: Code }): Pool {
  const pool = createPool({
    servers: [{ name: 'web', listen: '127.0.0.1:0' }],
    defaults: { overload: false },
    handlers: async (app) => {
      const { version, fail = 0, delay = 0 } = code.current
      let n = 0
      app.get('/', async (_request, reply) => {
        n++
        if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
        if (fail > 0 && n % Math.round(1 / fail) === 0) return reply.code(500).send({ version })
        return { version }
      })
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

interface Load { stop: () => Promise<{ versions: Map<number, number>, statuses: Map<number, number>, errors: number, byClient: Map<string, Set<number>> }> }

/** Keep-alive requests on `connections` sockets until stopped; each request may carry a client id header. */
function load (port: number, connections = 8, clients = 0): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  const versions = new Map<number, number>()
  const statuses = new Map<number, number>()
  const byClient = new Map<string, Set<number>>()
  let errors = 0
  const state = { running: true }
  let seq = 0
  const one = (): Promise<void> => new Promise(resolve => {
    const client = clients > 0 ? `client-${seq++ % clients}` : undefined
    const req = request({ host: '127.0.0.1', port, path: '/', agent, headers: client === undefined ? {} : { 'x-client': client } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1)
        const version = (JSON.parse(body) as { version: number }).version
        versions.set(version, (versions.get(version) ?? 0) + 1)
        if (client !== undefined) {
          const seen = byClient.get(client) ?? new Set<number>()
          seen.add(version)
          byClient.set(client, seen)
        }
        resolve()
      })
    })
    req.on('error', () => { errors++; resolve() })
    req.end()
  })
  const loops = Array.from({ length: connections }, async () => { while (state.running) await one() })
  return {
    stop: async () => {
      state.running = false
      await Promise.all(loops)
      agent.destroy()
      return { versions, statuses, errors, byClient }
    }
  }
}

/** The versions `n` requests in a row are answered by. */
async function versions (port: number, n: number): Promise<number[]> {
  const seen = new Set<number>()
  for (let i = 0; i < n; i++) {
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { text += chunk })
        res.on('end', () => resolve(text))
      }).on('error', reject).end()
    })
    seen.add((JSON.parse(body) as { version: number }).version)
  }
  return [...seen]
}

const portOf = (pool: Pool): number => (pool.load('web')!.address as AddressInfo).port

test('a good canary serves about its share, then is promoted: every request answered, none failed', async (t) => {
  const code = { current: { version: 1 } as Code }
  const pool = makePool(t, code)
  const events: CanaryEvent[] = []
  pool.addHook('onCanary', (event) => { events.push(event) })
  await pool.start()
  const traffic = load(portOf(pool))
  code.current = { version: 2 }
  const [report] = await pool.restart({ canary: { share: 10, window: 1500, minRequests: 20 } })
  const during = await traffic.stop()
  assert.equal(report?.canary?.result, 'promoted', JSON.stringify(report?.canary))
  assert.equal(report?.generation, 2)
  const c = report!.canary!
  assert.equal(c.result === 'promoted' ? c.idle : 'no', undefined, 'judged on its requests, not promoted for lack of them')
  const share = c.canary.requests / (c.canary.requests + c.serving.requests)
  assert.ok(share > 0.03 && share < 0.3, `the canary served ${(share * 100).toFixed(1)} % (10 % asked)`)
  assert.equal(during.errors, 0)
  assert.deepEqual([...during.statuses.keys()], [200])
  // Afterwards every request is the new code's.
  await report!.retired
  assert.deepEqual(await versions(portOf(pool), 20), [2])
  assert.deepEqual(events.map(e => e.report?.result ?? 'started'), ['started', 'promoted'])
})

test('a canary that fails one request in five is rolled back within seconds, with both generations\' figures; the old code serves on', async (t) => {
  const code = { current: { version: 1 } as Code }
  const pool = makePool(t, code)
  await pool.start()
  const traffic = load(portOf(pool))
  code.current = { version: 2, fail: 0.2 }
  const began = Date.now()
  const [report] = await pool.restart({ canary: { share: 20, window: 60_000 } })
  const took = Date.now() - began
  const during = await traffic.stop()
  const c = report!.canary!
  assert.equal(c.result, 'rolled-back')
  assert.equal(c.result === 'rolled-back' ? c.criterion : '', 'errors')
  assert.ok(took < 5000, `rolled back in ${took} ms`)
  assert.ok((c.canary.errorRate ?? 0) > 0.1 && c.serving.errorRate === 0, JSON.stringify(c))
  assert.equal(report!.generation, 1, 'the serving generation is the old one')
  assert.equal(during.errors, 0)
  const retired = await report!.retired
  assert.equal(retired?.generation, 2)
  assert.equal(retired?.cut, 0)
  assert.deepEqual(await versions(portOf(pool), 20), [1])
})

test('a slow canary (p99 five times the serving one) is rolled back on latency', async (t) => {
  const code = { current: { version: 1, delay: 4 } as Code }
  const pool = makePool(t, code)
  await pool.start()
  const traffic = load(portOf(pool))
  code.current = { version: 2, delay: 40 }
  const [report] = await pool.restart({ canary: { share: 20, window: 60_000 } })
  await traffic.stop()
  const c = report!.canary!
  assert.equal(c.result, 'rolled-back', JSON.stringify(c))
  assert.equal(c.result === 'rolled-back' ? c.criterion : '', 'latency')
})

test('an idle listener\'s canary is promoted at its window\'s end, marked idle (nothing was judged); with whenIdle: abort, aborted', async (t) => {
  const pool = makePool(t, { current: { version: 1 } as Code })
  await pool.start()
  const [report] = await pool.restart({ canary: { share: 10, window: 200 } })
  const c = report?.canary
  assert.equal(c?.result, 'promoted', JSON.stringify(c))
  assert.equal(c?.result === 'promoted' ? c.idle : undefined, true)
  assert.equal(c?.canary.requests, 0)

  // whenIdle: 'abort' (the command's workers): nothing judged, the serving generation stays.
  const [aborted] = await pool.restart({ canary: { share: 10, window: 200, whenIdle: 'abort' } })
  assert.equal(aborted?.canary?.result, 'aborted', JSON.stringify(aborted?.canary))
  assert.match(aborted?.canary?.result === 'aborted' ? aborted.canary.reason : '', /too few requests to judge: 0 on the canary and 0 on the serving generation/)
  assert.equal(pool.status()[0]?.generation, aborted?.canary?.serving.generation)
})

test('a sticky header keeps each client on one generation', async (t) => {
  const code = { current: { version: 1 } as Code }
  const pool = makePool(t, code)
  await pool.start()
  const traffic = load(portOf(pool), 8, 200)
  code.current = { version: 2 }
  const [report] = await pool.restart({ canary: { share: 30, window: 1000, sticky: { header: 'x-client' } } })
  const during = await traffic.stop()
  assert.equal(report?.canary?.result, 'promoted')
  // Before the promotion each client saw one version; a client may see both only across it.
  const both = [...during.byClient.values()].filter(v => v.size > 1).length
  assert.ok(during.byClient.size >= 150)
  const canaryClients = [...during.byClient.values()].filter(v => v.has(2) && !v.has(1)).length
  assert.ok(canaryClients > 0, 'some clients were on the canary all along')
  assert.ok(both < during.byClient.size, `${both} of ${during.byClient.size} clients saw both (only across the promotion)`)
})

test('abort by hand and a stop during a canary: the canary retires, nothing is lost, the serving code stays', async (t) => {
  const code = { current: { version: 1 } as Code }
  const pool = makePool(t, code)
  await pool.start()
  const web = pool.load('web')!
  let started = deferred()
  pool.addHook('onCanary', (event) => { if (event.report === undefined) started.resolve() })
  const traffic = load(portOf(pool))
  code.current = { version: 2 }
  const restarting = pool.restart({ canary: { share: 50, window: 60_000 } })
  await started.promise
  assert.equal(web.status.canary?.share, 50)
  assert.equal(web.status.canary?.canary.generation, 2)
  assert.equal(web.endCanary('abort'), true)
  const [report] = await restarting
  assert.equal(report?.canary?.result, 'aborted')
  assert.equal(report?.generation, 1)
  // A second canary, ended by a stop.
  started = deferred()
  const again = pool.restart({ canary: 50 })
  await started.promise
  const stopped = pool.stop({ timeout: 5000 })
  const [second] = await again
  assert.equal(second?.canary?.result, 'aborted')
  const during = await traffic.stop()
  const [stop] = await stopped
  assert.equal(stop?.cut, 0)
  assert.equal(during.statuses.get(500), undefined)
  assert.equal(web.endCanary('promote'), false, 'none runs any more')
})

test('reload with a canary: a changed listener is judged; one rolled back keeps its previous configuration and handlers', async (t) => {
  let version = 1
  const handlers = (): Record<string, (app: import('fastify').FastifyInstance) => Promise<void>> => {
    const v = version
    return { default: async (app) => { app.get('/', async (_r, reply) => v === 3 ? reply.code(500).send({ version: v }) : { version: v }) } }
  }
  const pool = createPool({ servers: [{ name: 'web', listen: '127.0.0.1:0' }], handlers: handlers(), defaults: { overload: false } })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const port = portOf(pool)
  const traffic = load(port)
  version = 3
  const report = await pool.reload({ servers: [{ name: 'web', listen: '127.0.0.1:0', bodyLimit: 2048 }], handlers: handlers() }, { canary: { share: 30, window: 60_000 } }).finally(() => traffic.stop())
  const during = await traffic.stop()
  assert.equal(report.canary?.web?.result, 'rolled-back')
  assert.deepEqual(report.changed, ['web'])
  assert.notEqual(pool.load('web')!.config.bodyLimit, 2048, 'the previous configuration serves')
  assert.equal(during.errors, 0)
  await assert.rejects(pool.restart({ canary: { share: 120 } }), (err: Error & { code?: string }) => err.code === 'FST_POOL_VALIDATE' && /canary/.test(err.message))
})

test('a WebSocket stays with the generation that took its handshake: one on the canary lives through its promotion; one on a rolled-back canary is closed with 1012 when it retires', async (t) => {
  const builds: Builds = { count: 0 }
  const pool = createPool({ servers: [{ name: 'web', listen: '127.0.0.1:0', upgradeDrainTimeout: 200 }], handlers: pluginHandler(builds), defaults: { overload: false } })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const web = pool.load('web')!
  const url = `${web.url!.replace(/^http/, 'ws')}/ws`
  const started = (): Promise<void> => new Promise(resolve => { pool.addHook('onCanary', (e) => { if (e.report === undefined) resolve() }) })

  // Promotion: handshakes split 50/50 until some reach the canary (generation 2).
  let running = started()
  const promoting = web.restart({ canary: { share: 50, window: 60_000 } })
  await running
  const clients: Client[] = []
  while (!clients.some(c => c.generation === 2) || !clients.some(c => c.generation === 1)) clients.push(await openClient(url))
  assert.ok(web.endCanary('promote'))
  const promoted = await promoting
  assert.equal(promoted.canary?.result, 'promoted')
  const onCanary = clients.filter(c => c.generation === 2)
  assert.deepEqual(await Promise.all(onCanary.map(c => c.echo('after'))), onCanary.map(() => 2), 'the canary\'s WebSockets live on after its promotion')

  // Rollback: a WebSocket on the canary (generation 3) is said goodbye with 1012 once upgradeDrainTimeout passed.
  running = started()
  const rolling = web.restart({ canary: { share: 50, window: 60_000 } })
  await running
  let onRolledBack: Client
  do onRolledBack = await openClient(url); while (onRolledBack.generation !== 3)
  assert.ok(web.endCanary('abort'))
  const aborted = await rolling
  assert.equal(aborted.canary?.result, 'aborted')
  assert.equal((await onRolledBack.closed).code, 1012)
  const retired = await aborted.retired
  assert.equal(retired?.generation, 3)
  assert.deepEqual(await Promise.all(onCanary.map(c => c.echo('still'))), onCanary.map(() => 2), 'the serving generation\'s WebSockets are untouched')
})
