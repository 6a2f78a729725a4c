// Lifecycle calls never race: any mix of start/stop/restart, on a listener or
// a pool, ends in the state of the last call and leaks no socket or timer.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createPool, type Listener, type Pool } from 'fastify-pool'
import { deferred, handles, keepAliveAgent, prng, send, tick, tryConnect, within } from './fixtures/lifecycle.ts'

type Op = 'start' | 'stop' | 'restart'
const OPS: Op[] = ['start', 'stop', 'restart']

function makePool (t: TestContext, names: string[]): Pool {
  const pool = createPool({
    servers: names.map(name => ({ name, listen: '127.0.0.1:0' })),
    defaults: { stopTimeout: 5_000 },
    handlers: async (app) => { app.get('/', async () => 'ok') }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

/** Record the port a listener is bound to, if any. */
function notePort (l: Listener, ports: Set<number>): void {
  const a = l.address
  if (typeof a === 'object' && a !== undefined) ports.add(a.port)
}

/**
 * Fire `count` random calls. Some are awaited, most are not, and between
 * calls the test yields for zero to a few ticks, so calls land while others
 * are queued, building, draining or retiring.
 */
async function hammer (random: () => number, count: number, call: (op: Op) => Promise<unknown>): Promise<{ last: Op, results: PromiseSettledResult<unknown>[] }> {
  const calls: Array<Promise<unknown>> = []
  let last: Op = 'stop'
  for (let i = 0; i < count; i++) {
    last = OPS[Math.floor(random() * OPS.length)] as Op
    const p = call(last)
    calls.push(p)
    const pause = random()
    if (pause < 0.15) await p.catch(() => {})
    else if (pause < 0.6) for (let n = Math.floor(random() * 4); n > 0; n--) await tick()
  }
  return { last, results: await Promise.allSettled(calls) }
}

function baseline (): { servers: number, sockets: number, timers: number } {
  const h = handles()
  return { servers: h.TCPServerWrap ?? 0, sockets: h.TCPSocketWrap ?? 0, timers: h.Timeout ?? 0 }
}

async function settledHandles (): Promise<ReturnType<typeof baseline>> {
  // Closing handles report on the next turns of the loop.
  for (let i = 0; i < 5; i++) await tick()
  return baseline()
}

for (const seed of [1, 7, 42]) {
  test(`one listener, 60 random start/stop/restart calls (seed ${seed}) end in the state of the last call, without leaks`, async (t) => {
    const before = baseline()
    const pool = makePool(t, ['a'])
    const listener = pool.load('a')!
    const ports = new Set<number>()
    const random = prng(seed)
    // Each start binds a new server (port 0): note every port seen as calls settle.
    const call = (op: Op): Promise<unknown> => listener[op]().finally(() => notePort(listener, ports))

    const { last, results } = await within(60_000, hammer(random, 60, call), 'the hammer')
    const rejected = results.filter(r => r.status === 'rejected')
    assert.deepEqual(rejected, [], 'no lifecycle call failed')
    assert.equal(listener.state, last === 'stop' ? 'stopped' : 'running', `last call was ${last}`)
    if (last !== 'stop') assert.equal((await send(`${listener.url}/`)).body, 'ok')

    await listener.stop()
    assert.ok(ports.size > 1, `the listener was started several times (ports ${[...ports].join(', ')})`)
    for (const port of ports) assert.equal(await tryConnect(port), 'ECONNREFUSED', `port ${port} is closed`)
    const after = await settledHandles()
    assert.equal(after.servers, before.servers, 'no server handle left')
    assert.equal(after.sockets, before.sockets, 'no socket handle left')
    assert.ok(after.timers <= before.timers, `no ref'd timer left (${before.timers} -> ${after.timers})`)
  })
}

for (const seed of [3, 99]) {
  test(`a pool of two listeners, 40 random start/stop/restart calls (seed ${seed}) end in the state of the last call`, async (t) => {
    const before = baseline()
    const pool = makePool(t, ['a', 'b'])
    const random = prng(seed)
    const { last, results } = await within(60_000, hammer(random, 40, op => pool[op]()), 'the hammer')
    assert.deepEqual(results.filter(r => r.status === 'rejected'), [], 'no lifecycle call failed')
    for (const l of pool) assert.equal(l.state, last === 'stop' ? 'stopped' : 'running', `${l.name}: last call was ${last}`)
    const ports = new Set<number>()
    for (const l of pool) notePort(l, ports)
    await pool.stop()
    for (const port of ports) assert.equal(await tryConnect(port), 'ECONNREFUSED')
    const after = await settledHandles()
    assert.equal(after.servers, before.servers, 'no server handle left')
    assert.equal(after.sockets, before.sockets, 'no socket handle left')
  })
}

test('pool.start() right after pool.stop() (not awaited) ends running', async (t) => {
  const pool = makePool(t, ['a', 'b'])
  await pool.start()
  const stopping = pool.stop()
  const starting = pool.start()
  await Promise.all([stopping, starting])
  for (const l of pool) assert.equal(l.state, 'running', l.name)
})

test('a second stop() shares the first one\'s promise; stop() of a stopped listener resolves undefined', async (t) => {
  const release = deferred()
  const arrived = deferred()
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'done' }) }
  })
  t.after(() => { release.resolve(); return pool.stop({ timeout: 0 }) })
  const listener = pool.load('a')!
  assert.equal(await listener.stop(), undefined, 'never started')
  await listener.start()
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())
  const reply = send(`${listener.url}/slow`, { agent })
  await within(10_000, arrived.promise, 'slow request arrival')

  const first = listener.stop()
  await tick()
  const second = listener.stop()
  assert.equal(second, first, 'the same promise')
  release.resolve()
  const [a, b] = await within(10_000, Promise.all([first, second]), 'both stops')
  assert.equal(a, b)
  assert.equal(a?.cut, 0)
  assert.equal((await reply).status, 200)
  assert.equal(await listener.stop(), undefined, 'already stopped')
  assert.equal(listener.status.lastStop, a)
})

test('stop() during a restart that is still retiring its old generation waits for it and ends stopped', async (t) => {
  const release = deferred()
  const arrived = deferred()
  const closed: number[] = []
  let builds = 0
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    defaults: { stopTimeout: 30_000 },
    handlers: async (app) => {
      const id = ++builds
      app.addHook('onClose', async () => { closed.push(id) })
      app.get('/slow', async () => { arrived.resolve(); await release.promise; return `slow ${id}` })
    }
  })
  t.after(() => { release.resolve(); return pool.stop({ timeout: 0 }) })
  await pool.start()
  const listener = pool.load('a')!
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())
  const reply = send(`${listener.url}/slow`, { agent })
  await within(10_000, arrived.promise, 'slow request arrival')

  const restarting = listener.restart()
  while (listener.status.generation !== 2) await tick()
  // The queue has moved on: stop() runs now, while generation 1 still serves /slow.
  const stopping = listener.stop()
  await tick()
  assert.equal(listener.state, 'draining')
  assert.deepEqual(closed, [])
  release.resolve()
  const res = await within(10_000, reply, 'slow reply')
  assert.equal(res.body, 'slow 1')
  assert.equal(res.headers.connection, 'close', 'the drain reached the retiring generation too')
  const report = await within(10_000, stopping, 'stop()')
  await within(10_000, restarting, 'restart()')
  assert.equal(report?.cut, 0)
  assert.deepEqual(closed.sort(), [1, 2], 'both generations closed')
  assert.equal(listener.state, 'stopped')
})

test('start() while stop() drains: the listener ends running on a fresh server', async (t) => {
  const release = deferred()
  const arrived = deferred()
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.get('/', async () => 'ok')
      app.get('/slow', async () => { arrived.resolve(); await release.promise; return 'done' })
    }
  })
  t.after(() => { release.resolve(); return pool.stop({ timeout: 0 }) })
  const listener = pool.load('a')!
  await listener.start()
  const first = listener.server
  const reply = send(`${listener.url}/slow`)
  await within(10_000, arrived.promise, 'slow request arrival')
  const stopping = listener.stop()
  const starting = listener.start()
  await tick()
  assert.equal(listener.state, 'draining', 'start() waits for the stop before it')
  release.resolve()
  await within(10_000, Promise.all([stopping, starting, reply]), 'stop, start and the slow reply')
  assert.equal(listener.state, 'running')
  assert.notEqual(listener.server, first)
  assert.equal((await send(`${listener.url}/`)).body, 'ok')
})
