// The control API, over real sockets: status, restart/stop/start by glob,
// the token rules, and a control request that acts on its own listener.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { createPool, type ControlOptions, type Pool, type PoolOptions } from 'fastify-pool'
import { send } from './fixtures/lifecycle.ts'

const TOKEN = 'a-control-token-of-some-length'
const hello = async (app: FastifyInstance): Promise<void> => { app.get('/', async () => 'hello') }

function pool (t: TestContext, control: ControlOptions, extra: Partial<PoolOptions> = {}): Pool {
  const p = createPool({
    control,
    servers: [
      { name: 'public-a', listen: '127.0.0.1:0' },
      { name: 'public-b', listen: '127.0.0.1:0' },
      { name: 'admin', listen: '127.0.0.1:0' }
    ],
    handlers: hello,
    ...extra
  })
  t.after(() => p.stop({ timeout: 0 }))
  return p
}

async function call (p: Pool, method: 'GET' | 'POST', path: string, token?: string): Promise<{ status: number, body: any, headers: Record<string, unknown> }> {
  const reply = await send(`${p.load('admin')?.url ?? ''}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return { status: reply.status, body: JSON.parse(reply.body), headers: reply.headers }
}

const generations = (p: Pool): Record<string, number> => Object.fromEntries(p.status().map(s => [s.name, s.generation]))

test('GET /pool tells the state, URL, generation, uptime, in flight, last error and certificate of every listener', async (t) => {
  const p = pool(t, { listener: 'admin' })
  await p.start()
  const { status, body, headers } = await call(p, 'GET', '/pool')
  assert.equal(status, 200)
  assert.equal(headers['cache-control'], 'no-store')
  assert.deepEqual(body.listeners.map((l: { name: string }) => l.name), ['public-a', 'public-b', 'admin'])
  const a = body.listeners[0]
  assert.equal(a.state, 'running')
  assert.equal(a.url, p.load('public-a')?.url)
  assert.equal(a.generation, 1)
  assert.equal(typeof a.uptime, 'number')
  assert.equal(a.inflight, 0)
  assert.ok('lastError' in a || a.lastError === undefined)
  assert.equal(body.listeners[2].inflight, 1, 'the control request itself')
  assert.equal((await send(`${p.load('public-a')?.url ?? ''}/pool`)).status, 404, 'only on the control listener')
})

test('POST /pool/restart?name=GLOB gives a new generation to exactly the listeners it selects', async (t) => {
  const p = pool(t, { listener: 'admin' }, {
    servers: [
      { name: 'public-a', listen: '127.0.0.1:0' },
      { name: 'public-b', listen: '[::1]:0' },
      { name: 'admin', listen: '127.0.0.1:0' }
    ]
  })
  await p.start()
  const { status, body } = await call(p, 'POST', '/pool/restart?name=public-*')
  assert.equal(status, 200)
  assert.equal(body.ok, true)
  assert.deepEqual(body.results.map((r: { name: string, ok: boolean, generation: number }) => [r.name, r.ok, r.generation]), [['public-a', true, 2], ['public-b', true, 2]])
  assert.deepEqual(generations(p), { 'public-a': 2, 'public-b': 2, admin: 1 })

  const byBind = await call(p, 'POST', `/pool/restart?bind=${encodeURIComponent('[::1]:*')}`)
  assert.deepEqual(byBind.body.results.map((r: { name: string }) => r.name), ['public-b'])
  const none = await call(p, 'POST', '/pool/restart?name=nothing-*')
  assert.equal(none.status, 404)
  assert.match(none.body.error, /no listener matches name=nothing-\* \(names: public-a, public-b, admin\)/)
  assert.equal((await call(p, 'POST', '/pool/restart?name=a&bind=b')).status, 400)
  assert.deepEqual(generations(p), { 'public-a': 2, 'public-b': 3, admin: 1 })
})

test('stop and start by glob; a failure is reported per listener with a 500', async (t) => {
  const p = pool(t, { listener: 'admin' }, {
    servers: [
      { name: 'public-a', listen: '127.0.0.1:0' },
      { name: 'public-off', listen: '127.0.0.1:0', disabled: true },
      { name: 'admin', listen: '127.0.0.1:0' }
    ]
  })
  await p.start()
  const stopped = await call(p, 'POST', '/pool/stop?name=public-a')
  assert.equal(stopped.status, 200)
  assert.deepEqual(stopped.body.results.map((r: { name: string, state: string }) => [r.name, r.state]), [['public-a', 'stopped']])
  assert.equal(p.load('public-a')?.isRunning, false)
  const started = await call(p, 'POST', '/pool/start?name=public-*')
  assert.equal(started.status, 500)
  assert.equal(started.body.ok, false)
  const byName = Object.fromEntries(started.body.results.map((r: { name: string, ok: boolean, error?: string }) => [r.name, r]))
  assert.equal(byName['public-a'].ok, true)
  assert.equal(byName['public-off'].ok, false)
  assert.match(byName['public-off'].error, /disabled/)
  assert.equal(p.load('public-a')?.isRunning, true)
})

test('a control request may restart, and (forced) stop, the listener that serves it, and gets its answer', async (t) => {
  const p = pool(t, { listener: 'admin' })
  await p.start()
  const restarted = await call(p, 'POST', '/pool/restart?name=admin')
  assert.equal(restarted.status, 200)
  assert.equal(restarted.body.results[0].generation, 2)
  assert.equal(p.load('admin')?.status.generation, 2)

  const admin = p.load('admin')
  const stopped = new Promise<void>(resolve => {
    const check = (): void => { if (admin?.state === 'stopped') resolve(); else setImmediate(check) }
    check()
  })
  // Refused unless forced, by name or by a glob that includes it: it would cut every command off.
  for (const query of ['name=admin', 'name=*', 'bind=127.0.0.1:*']) {
    const refused = await call(p, 'POST', `/pool/stop?${query}`)
    assert.equal(refused.status, 409, query)
    assert.match(refused.body.error, /listener "admin" serves this control API.*force=1/)
  }
  assert.equal(p.load('public-a')?.isRunning, true, 'a refused stop stops nothing')
  const stop = await call(p, 'POST', '/pool/stop?name=admin&force=1')
  assert.equal(stop.status, 200)
  assert.deepEqual(stop.body.results.map((r: { name: string, pending?: boolean }) => [r.name, r.pending]), [['admin', true]])
  await stopped
  assert.equal(p.load('public-a')?.isRunning, true)
})

test('a token is asked for when set: 401 without it or with another one', async (t) => {
  const p = pool(t, { listener: 'admin', token: TOKEN })
  await p.start()
  const without = await call(p, 'GET', '/pool')
  assert.equal(without.status, 401)
  assert.equal(without.headers['www-authenticate'], 'Bearer realm="fastify-pool"')
  assert.equal((await call(p, 'GET', '/pool', 'wrong-token-of-enough-length')).status, 401)
  assert.equal((await call(p, 'POST', '/pool/restart', 'x')).status, 401)
  assert.deepEqual(generations(p), { 'public-a': 1, 'public-b': 1, admin: 1 }, 'a refused request changes nothing')
  assert.equal((await call(p, 'GET', '/pool', TOKEN)).status, 200)
  assert.equal((await call(p, 'POST', '/pool/restart?name=public-a', TOKEN)).status, 200)
})

test('a control listener other machines can reach needs a token; the option is checked with the rest', () => {
  const issues = (control: ControlOptions, listen = '0.0.0.0:0'): string[] => {
    try {
      createPool({ control, servers: [{ name: 'admin', listen }, { name: 'api', listen: '127.0.0.1:0' }] })
    } catch (err) {
      return (err as { errors: Array<{ path: string, message: string }> }).errors.map(i => `${i.path}: ${i.message}`)
    }
    return []
  }
  assert.deepEqual(issues({ listener: 'admin' }), ['control.token: is required: listener "admin" listens on 0.0.0.0:0, which other machines can reach; bind it to 127.0.0.1, ::1 or a unix socket, or set a token'])
  assert.deepEqual(issues({ listener: 'admin' }, ':0').length, 1, 'every interface is not loopback')
  assert.deepEqual(issues({ listener: 'admin', token: TOKEN }), [])
  assert.deepEqual(issues({ listener: 'admin' }, '127.0.0.1:0'), [])
  assert.deepEqual(issues({ listener: 'admin' }, '[::1]:0'), [])
  assert.deepEqual(issues({ listener: 'admin' }, 'unix:/tmp/fastify-pool-control-test.sock'), [])
  assert.deepEqual(issues({ listener: 'ops', token: TOKEN }), ['control.listener: names no listener (got "ops"; listeners: admin, api)'])
  assert.deepEqual(issues({ listener: 'admin', token: 'short' }), ['control.token: must be a secret of at least 16 characters (got 5 characters)'])
})

test('POST /pool/reload runs the reload it was given, or answers 501', async (t) => {
  const without = pool(t, { listener: 'admin' })
  await without.start()
  const none = await call(without, 'POST', '/pool/reload')
  assert.equal(none.status, 501)

  let reloads = 0
  const withReload = pool(t, { listener: 'admin', reload: async () => { reloads++; return { added: [] } } })
  await withReload.start()
  const done = await call(withReload, 'POST', '/pool/reload')
  assert.equal(done.status, 200)
  assert.deepEqual(done.body, { ok: true, report: { added: [] } })
  assert.equal(reloads, 1)
  const failing = pool(t, { listener: 'admin', reload: async () => { throw Object.assign(new Error('bad file'), { errors: [{ path: 'servers[0].listen', message: 'nope' }] }) } })
  await failing.start()
  const refused = await call(failing, 'POST', '/pool/reload')
  assert.equal(refused.status, 422)
  assert.equal(refused.body.error, 'bad file')
  assert.deepEqual(refused.body.problems, [{ path: 'servers[0].listen', message: 'nope' }])
})

test('a reload keeps the control listener; a clone acts on itself', async (t) => {
  const p = pool(t, { listener: 'admin' })
  await assert.rejects(p.reload({ servers: [{ name: 'public-a', listen: '127.0.0.1:0' }] }), (err: Error & { errors: Array<{ message: string }> }) => {
    assert.match(err.errors[0]?.message ?? '', /must keep the listener "admin": the control API is served there/)
    return true
  })
  const clone = p.clone()
  t.after(() => clone.stop({ timeout: 0 }))
  await clone.start()
  await call(clone, 'POST', '/pool/restart?name=public-a')
  assert.equal(clone.load('public-a')?.status.generation, 2)
  assert.equal(p.load('public-a')?.isRunning, false, 'the original pool is untouched')
})

test('GET /pool tells the figures of the process that answers: pid, Node, uptime, CPU, memory, event-loop delay', async (t) => {
  const p = pool(t, { listener: 'admin' })
  await p.start()
  const first = (await call(p, 'GET', '/pool')).body.process
  assert.equal(first.pid, process.pid)
  assert.equal(first.node, process.version)
  assert.ok(first.uptime > 0 && first.uptime <= process.uptime() * 1000 + 1000)
  assert.ok(first.memory.rss > first.memory.heapUsed && first.memory.heapUsed > 0)
  // Busy for a while between two readings: the second sees the CPU. (When Node's histogram
  // records a stall differs between Node versions: only its shape is checked.)
  const until = Date.now() + 150
  while (Date.now() < until) { /* keep the loop busy */ }
  const second = (await call(p, 'GET', '/pool')).body.process
  assert.ok(second.cpu > 20, `CPU ${second.cpu} % while busy`)
  for (const k of ['p50', 'p99', 'max']) assert.ok(Number.isFinite(second.eventLoopDelay[k]) && second.eventLoopDelay[k] >= 0, `eventLoopDelay.${k}`)
  assert.ok(second.eventLoopDelay.p50 <= second.eventLoopDelay.max)
})

test('10 polls of GET /pool and of the status page write no line at info; at debug, one line each; an action is still logged at info', async (t) => {
  const run = async (level: 'info' | 'debug'): Promise<Array<Record<string, unknown>>> => {
    const lines: Array<Record<string, unknown>> = []
    const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
    const p = pool(t, { listener: 'admin' }, { logger: pino({ level }, stream), defaults: { logLevel: level } })
    await p.start()
    const before = lines.length
    for (let i = 0; i < 10; i++) assert.equal((await call(p, 'GET', '/pool')).status, 200)
    for (let i = 0; i < 2; i++) assert.equal((await send(`${p.load('admin')?.url ?? ''}/pool/dashboard`)).status, 200)
    assert.equal((await call(p, 'POST', '/pool/restart?name=public-a')).status, 200)
    await p.stop({ timeout: 0 })
    return lines.slice(before)
  }
  const info = await run('info')
  assert.deepEqual(info.filter(l => l.listener === 'admin' && l.msg !== 'listener stopped').map(l => l.msg), [], 'no line for an operator\'s request at info')
  assert.ok(info.some(l => l.listener === 'public-a' && /restart/.test(String(l.msg))), 'the restart it asked for is logged')
  const debug = await run('debug')
  const requests = debug.filter(l => l.msg === 'control request')
  assert.equal(requests.length, 13, 'one line per control request at debug')
  assert.deepEqual(requests.slice(0, 10).map(l => [l.level, l.method, l.url, l.statusCode]), Array.from({ length: 10 }, () => [20, 'GET', '/pool', 200]))
  assert.equal(debug.filter(l => l.listener === 'admin' && (l.msg === 'incoming request' || l.msg === 'request completed')).length, 0, 'not also Fastify\'s two lines per request')
})
