// restart() and reconfigure(): a new generation takes over the live socket,
// the old one finishes its requests and only then closes. Real sockets.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'
import type { FastifyInstance } from 'fastify'
import { createPool, Listener, validateConfig, type Handlers, type ListenerConfig, type Pool, type PoolOptions } from 'fastify-pool'
import { deferred, keepAliveAgent, RawClient, send, tick, tryConnect, within } from './fixtures/lifecycle.ts'

function makePool (t: TestContext, handlers: Handlers, servers: ListenerConfig[] = [{ name: 'a', listen: '127.0.0.1:0' }], options: Partial<PoolOptions> = {}): Pool {
  const pool = createPool({ servers, defaults: { stopTimeout: 30_000 }, handlers, ...options })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const portOf = (l: Listener): number => (l.address as AddressInfo).port

/** Keep-alive load (10 connections) until the test stops it; at most 60 s. */
function load (url: string): { instance: autocannon.Instance, done: Promise<autocannon.Result> } {
  let instance!: autocannon.Instance
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon({ url, connections: 10, duration: 60, timeout: 10 }, (err, result) => err == null ? resolve(result) : reject(err))
  })
  return { instance, done }
}

test('restarts under keep-alive load on two listeners: no error, no non-2xx, no closed connection', async (t) => {
  let builds = 0
  let late = 0
  let gate: Promise<void> = Promise.resolve()
  let held: { arrived: () => void } | undefined
  const served = new Map<number, number>()
  // A plugin gets an encapsulated child of its listener's instance (Object.create).
  const serving = (app: FastifyInstance): boolean => [pool.load('a')?.app, pool.load('b')?.app].some(root => root !== undefined && (root === app || Object.prototype.isPrototypeOf.call(root, app)))
  const pool: Pool = makePool(t, async (app) => {
    const id = ++builds
    // Before each restart the test holds a few requests on the old
    // generation, and lets them go once the new one serves: they are in
    // flight across the swap, whatever the timing of the build.
    app.get('/', async () => {
      held?.arrived()
      await gate
      served.set(id, (served.get(id) ?? 0) + 1)
      if (!serving(app)) late++
      return { id }
    })
  }, [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }])
  await pool.start()
  const listeners = [pool.load('a')!, pool.load('b')!]
  const ports = listeners.map(portOf)
  let connections = 0
  for (const l of listeners) l.server!.on('connection', () => { connections++ })

  const runs = listeners.map(l => load(`${l.url}/`))
  t.after(() => { for (const run of runs) run.instance.stop() })
  // Each restart waits until both load generators got another 300 answers,
  // so every generation serves traffic and each swap happens mid-stream.
  const answers = (count: number) => Promise.all(runs.map(({ instance }) => new Promise<void>((resolve) => {
    let left = count
    const onResponse = (): void => { if (--left === 0) { instance.removeListener('response', onResponse); resolve() } }
    instance.on('response', onResponse)
  })))
  const restarts = 5
  for (let i = 0; i < restarts; i++) {
    await within(20_000, answers(300), `load before restart ${i + 1}`)
    const release = deferred()
    const blocked = deferred()
    let count = 0
    gate = release.promise
    held = { arrived: () => { if (++count === 4) blocked.resolve() } }
    await within(20_000, blocked.promise, `requests held before restart ${i + 1}`)
    held = undefined
    await within(20_000, pool.restart(), `restart ${i + 1}`)
    release.resolve()
  }
  await within(20_000, answers(300), 'load after the last restart')
  for (const run of runs) run.instance.stop()
  const results = await within(30_000, Promise.all(runs.map(run => run.done)), 'load runs')

  assert.ok(late > 0, 'some requests were in flight across a swap and answered by the old generation')
  for (const r of results) {
    assert.equal(r.errors, 0, 'errors')
    assert.equal(r.timeouts, 0, 'timeouts')
    assert.equal(r.non2xx, 0, 'non-2xx responses')
    assert.equal(r.resets, 0, 'resets')
    assert.ok(r['2xx'] > 0)
  }
  // Keep-alive connections survived every swap: none was closed and reopened.
  assert.equal(connections, 20, 'each load generator kept its 10 connections')
  assert.deepEqual(listeners.map(portOf), ports, 'the ports never changed')
  for (const l of listeners) assert.equal(l.status.generation >= restarts + 1, true)
  // Every generation of both listeners served traffic: the swaps happened under load.
  assert.equal(builds, 2 * (restarts + 1))
  for (let id = 1; id <= builds; id++) assert.ok((served.get(id) ?? 0) >= 100, `instance ${id} served ${served.get(id) ?? 0} requests`)
})

test('a request in flight finishes on the old generation; its onClose hooks run only after it', async (t) => {
  const arrived = deferred()
  const release = deferred()
  const events: string[] = []
  let builds = 0
  const pool = makePool(t, async (app) => {
    const id = ++builds
    app.addHook('onClose', async () => { events.push(`closed ${id}`) })
    app.get('/who', async () => `gen ${id}`)
    app.get('/slow', async () => { arrived.resolve(); await release.promise; events.push(`answered slow on ${id}`); return `slow on ${id}` })
  })
  t.after(() => release.resolve())
  await pool.start()
  const listener = pool.load('a')!
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const slow = send(`${listener.url}/slow`, { agent })
  await within(10_000, arrived.promise, 'slow request arrival')
  const restarted = listener.restart().then(async (report) => {
    events.push('restart resolved')
    const retired = await report.retired
    events.push(`retired ${retired?.generation} cut ${retired?.cut}`)
  })
  // The swap happens once the new instance is ready; the old one waits for /slow.
  while (listener.status.generation !== 2) await tick()
  assert.equal((await send(`${listener.url}/who`)).body, 'gen 2', 'new requests reach the new generation')
  assert.equal(listener.status.inflight, 1, 'the old generation still serves /slow')
  await tick()
  assert.deepEqual(events, ['restart resolved'])

  release.resolve()
  const res = await within(10_000, slow, 'slow reply')
  assert.equal(res.body, 'slow on 1')
  assert.notEqual(res.headers.connection, 'close', 'a restart does not close keep-alive connections')
  await within(10_000, restarted, 'restart()')
  // restart() resolved at the swap; its report's `retired` once generation 1 closed.
  assert.deepEqual(events, ['restart resolved', 'answered slow on 1', 'closed 1', 'retired 1 cut 0'])
})

test('a restart whose build fails leaves the old generation serving and rejects with FST_POOL_RESTART', async (t) => {
  let builds = 0
  const pool = makePool(t, async (app) => {
    const id = ++builds
    if (id === 2) throw new Error('plugin exploded')
    app.get('/who', async () => `gen ${id}`)
  })
  await pool.start()
  const listener = pool.load('a')!
  const clientErrorListeners = listener.server!.listenerCount('clientError')
  const requestListeners = listener.server!.listenerCount('request')

  await assert.rejects(listener.restart(), (err: Error & { code?: string, errors?: Array<{ name: string, error: Error }> }) => {
    assert.equal(err.code, 'FST_POOL_RESTART')
    assert.match(err.message, /plugin exploded/)
    assert.equal(err.errors?.[0]?.name, 'a')
    return true
  })
  assert.equal(listener.state, 'running')
  assert.equal(listener.status.generation, 1)
  assert.match(listener.status.lastError ?? '', /plugin exploded/)
  assert.equal((await send(`${listener.url}/who`)).body, 'gen 1')
  assert.equal(listener.server!.listenerCount('clientError'), clientErrorListeners, 'the failed build left no clientError listener behind')
  assert.equal(listener.server!.listenerCount('request'), requestListeners)

  // The pool-level restart aggregates the same failure; a later good build succeeds.
  await listener.restart()
  assert.equal((await send(`${listener.url}/who`)).body, 'gen 3')
})

test('restarts do not pile up clientError listeners, and a malformed request gets one 400', async (t) => {
  const pool = makePool(t, async (app) => { app.get('/', async () => 'ok') })
  await pool.start()
  const listener = pool.load('a')!
  const before = listener.server!.listenerCount('clientError')
  assert.equal(before, 1)
  for (let i = 0; i < 5; i++) await listener.restart()
  assert.equal(listener.server!.listenerCount('clientError'), before)

  const client = new RawClient(portOf(listener))
  t.after(() => client.destroy())
  await client.connected()
  await client.write('NOT HTTP AT ALL\r\n\r\n')
  const res = await within(10_000, client.response(), 'reply to garbage')
  assert.equal(res.status, 400)
  await within(10_000, client.closed, 'connection closed after the 400')
})

test('concurrent restarts of one listener coalesce into one new generation', async (t) => {
  let builds = 0
  const pool = makePool(t, async () => { builds++ })
  await pool.start()
  const listener = pool.load('a')!
  assert.equal(builds, 1)

  const calls = [listener.restart(), listener.restart(), listener.restart()]
  assert.equal(calls[0], calls[1], 'a restart not yet begun is shared')
  await Promise.all(calls)
  assert.equal(builds, 2)
  assert.equal(listener.status.generation, 2)

  // Once a restart is building, a new call may carry new handlers: it runs after it, once.
  const first = listener.restart()
  await tick()
  const second = [listener.restart(), listener.restart()]
  assert.notEqual(first, second[0])
  await Promise.all([first, ...second])
  assert.equal(builds, 4)
  assert.equal(listener.status.generation, 4)
})

test('restart of a stopped listener starts it on its configured address with its handlers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-restart-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const socketPath = join(dir, 'pool.sock')
  const pool = makePool(t, { api: async (app) => { app.get('/api', async () => 'api') } }, [
    { name: 'unix', listen: `unix:${socketPath}`, handler: 'api' },
    { name: 'tcp', listen: '127.0.0.1:0', handler: 'api' }
  ])
  // Never started, then started, stopped and restarted.
  for (const round of ['never started', 'stopped']) {
    await pool.restart()
    const unix = pool.load('unix')!
    const tcp = pool.load('tcp')!
    assert.equal(unix.address, socketPath, round)
    assert.equal((tcp.address as AddressInfo).address, '127.0.0.1', round)
    assert.equal(await new Promise<string>((resolve, reject) => {
      import('node:http').then(({ request }) => request({ socketPath, path: '/api' }, res => {
        let body = ''
        res.on('data', (c: Buffer) => { body += c.toString() })
        res.on('end', () => resolve(body))
      }).on('error', reject).end(), reject)
    }), 'api', `${round}: the unix listener serves its handler`)
    assert.equal((await send(`${tcp.url}/api`)).body, 'api', `${round}: the tcp listener serves its handler`)
    const port = portOf(tcp)
    await pool.stop()
    assert.equal(await tryConnect(port), 'ECONNREFUSED')
  }
})

test('reconfigure(): stopped, the config is replaced; running on the same bind, a new generation uses it on the same socket', async (t) => {
  const servers: ListenerConfig[] = [{ name: 'a', listen: '127.0.0.1:0', keepAliveTimeout: 5_000 }]
  const handlers = async (app: FastifyInstance) => { app.get('/', async () => 'ok') }
  const pool = makePool(t, handlers, servers)
  const listener = pool.load('a')!
  const config = (over: Partial<ListenerConfig>) => validateConfig({ servers: [{ ...servers[0]!, ...over }], handlers })[0]!

  await listener.reconfigure(config({ health: { readiness: '/ready-stopped' } }))
  assert.equal(listener.config.health.readiness, '/ready-stopped')
  await pool.start()
  assert.equal((await send(`${listener.url}/ready-stopped`)).status, 200)

  const port = portOf(listener)
  const server = listener.server as import('node:http').Server
  await listener.reconfigure(config({ keepAliveTimeout: 9_000, requestTimeout: 60_000, headersTimeout: 20_000, health: { readiness: '/ready-running' } }))
  assert.equal(listener.server, server, 'the same Node server')
  assert.equal(portOf(listener), port)
  assert.equal(listener.status.generation, 2)
  assert.equal(server.keepAliveTimeout, 9_000)
  assert.equal(server.requestTimeout, 60_000)
  assert.equal(server.headersTimeout, 20_000)
  assert.equal((await send(`${listener.url}/ready-running`)).status, 200)
  assert.equal((await send(`${listener.url}/ready-stopped`)).status, 404, 'the old routes are gone')
})

test('reconfigure() of a running listener to another bind, scheme or name rejects and changes nothing', async (t) => {
  const servers: ListenerConfig[] = [{ name: 'a', listen: '127.0.0.1:0' }]
  const handlers = async (app: FastifyInstance) => { app.get('/', async () => 'ok') }
  const pool = makePool(t, handlers, servers)
  await pool.start()
  const listener = pool.load('a')!
  const before = listener.config
  const cases: Array<[Partial<ListenerConfig>, RegExp]> = [
    [{ listen: '127.0.0.2:0' }, /cannot move from 127\.0\.0\.1:0 to 127\.0\.0\.2:0/],
    [{ tls: { cert: 'test/fixtures/tls/server.crt', key: 'test/fixtures/tls/server.key' } }, /serves HTTP and cannot switch to HTTPS/],
    [{ http2: true }, /serves HTTP and cannot switch to HTTP\/2/],
    [{ name: 'renamed' }, /cannot rename listener "a" to "renamed"/]
  ]
  for (const [over, message] of cases) {
    const next = validateConfig({ servers: [{ ...servers[0]!, ...over }], handlers })[0]!
    await assert.rejects(listener.reconfigure(next), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_POOL_RESTART')
      assert.match(err.message, message)
      return true
    })
    assert.equal(listener.config, before)
    assert.equal(listener.status.generation, 1)
    assert.equal(listener.state, 'running')
  }
  await assert.rejects(listener.reconfigure(null as never), { code: 'FST_POOL_INVALID_ARGUMENT' })
  assert.equal((await send(`${listener.url}/`)).body, 'ok')
})
