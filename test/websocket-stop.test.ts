// WebSockets at a stop and at the end of a retirement: the goodbye comes
// first (preClose, with a close code that says why), spread over a window;
// what ignores it is destroyed at the deadline, counted and logged.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { AddressInfo } from 'node:net'
import type { FastifyPluginAsync } from 'fastify'
import { CHANNELS, createPool, type CutEvent, type Handler, type ListenerConfig, type Pool, type PoolOptions } from 'fastify-pool'
import { memoryLogger } from './fixtures/lifecycle.ts'
import { deafClient, openClients, pluginHandler, rawHandler, type Builds } from './fixtures/websocket.ts'

function makePool (t: TestContext, handlers: Handler, server: Partial<ListenerConfig> = {}, options: Partial<PoolOptions> = {}): Pool {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0', ...server }], defaults: { stopTimeout: 10_000 }, handlers, ...options })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const wsUrl = (pool: Pool): string => `${pool.load('a')!.url!.replace(/^http/, 'ws')}/ws`
const portOf = (pool: Pool): number => (pool.load('a')!.address as AddressInfo).port

function cuts (t: TestContext): CutEvent[] {
  const seen: CutEvent[] = []
  const onCut = (message: unknown): void => { seen.push(message as CutEvent) }
  subscribe(CHANNELS.cut, onCut)
  t.after(() => unsubscribe(CHANNELS.cut, onCut))
  return seen
}

for (const [kind, make] of [['@fastify/websocket', pluginHandler], ['a raw ws server', rawHandler]] as const) {
  test(`stop() with 100 open WebSockets (${kind}): 100 close frames with 1001, and it resolves right after the last close`, async (t) => {
    const pool = makePool(t, make({ count: 0 }))
    await pool.start()
    const clients = await openClients(wsUrl(pool), 100)
    const [report] = await pool.stop({ timeout: 5000 })
    const stopped = performance.timeOrigin + performance.now()
    const closes = await Promise.all(clients.map(c => c.closed))
    assert.deepEqual(new Set(closes.map(c => c.code)), new Set([1001]), 'every client got a close frame saying "going away"')
    assert.equal(closes[0]!.reason, 'stop')
    const last = Math.max(...closes.map(c => c.at))
    assert.ok(stopped - last < 200, `stop() resolved ${Math.round(stopped - last)} ms after the last close`)
    assert.equal(report?.cut, 0)
    assert.equal(report?.upgradedCut, 0)
  })
}

test('stop() with 100 clients that ignore the close frame: it resolves at the deadline, and cut says 100, in the report, the log and the cut channel', async (t) => {
  const { logger, lines } = memoryLogger('warn')
  const seen = cuts(t)
  const pool = makePool(t, pluginHandler({ count: 0 }), {}, { logger })
  await pool.start()
  const sockets = await Promise.all(Array.from({ length: 100 }, () => deafClient(portOf(pool))))
  t.after(() => { for (const s of sockets) s.destroy() })
  assert.equal(pool.load('a')!.status.upgraded, 100)
  const began = Date.now()
  const [report] = await pool.stop({ timeout: 1000 })
  const took = Date.now() - began
  assert.ok(took >= 1000 && took < 3000, `stop() took ${took} ms`)
  assert.equal(report?.cut, 100)
  assert.equal(report?.upgradedCut, 100)
  const warning = lines.find(l => l.level === 40 && /cut 100 upgraded connection/.test(l.msg))
  assert.ok(warning !== undefined, `a warning names the cut: ${JSON.stringify(lines.map(l => l.msg))}`)
  assert.deepEqual(seen.filter(e => e.name === 'a').map(e => [e.cut, e.during, e.upgraded]), [[100, 'stop', 100]])
})

test('a restart keeps WebSockets until upgradeDrainTimeout, then the old generation says 1012, retires and is closed', async (t) => {
  const builds: Builds = { count: 0 }
  const pool = makePool(t, pluginHandler(builds), { upgradeDrainTimeout: 300 })
  await pool.start()
  const clients = await openClients(wsUrl(pool), 20)
  const began = Date.now()
  const report = await pool.load('a')!.restart()
  const closes = await Promise.all(clients.map(c => c.closed))
  const after = Math.min(...closes.map(c => c.at)) - performance.timeOrigin - (began - performance.timeOrigin)
  assert.deepEqual(new Set(closes.map(c => c.code)), new Set([1012]), 'service restart')
  assert.equal(closes[0]!.reason, 'restart')
  assert.ok(after >= 290, `the first goodbye came ${Math.round(after)} ms after the restart`)
  const retired = await report.retired
  assert.equal(retired?.cut, 0)
  assert.equal(pool.load('a')!.status.retiring.length, 0)
})

test('a retirement whose WebSockets outlive upgradeDrainTimeout and ignore the goodbye: destroyed after the grace, counted in retired.cut, logged', async (t) => {
  const { logger, lines } = memoryLogger('warn')
  const seen = cuts(t)
  const pool = makePool(t, pluginHandler({ count: 0 }), { upgradeDrainTimeout: 100 }, { logger })
  await pool.start()
  const sockets = await Promise.all(Array.from({ length: 10 }, () => deafClient(portOf(pool))))
  t.after(() => { for (const s of sockets) s.destroy() })
  const report = await pool.load('a')!.restart()
  const retired = await report.retired
  assert.equal(retired?.cut, 10)
  assert.equal(retired?.upgradedCut, 10)
  assert.equal(pool.load('a')!.status.upgraded, 0)
  assert.ok(lines.some(l => l.level === 40 && /upgradeDrainTimeout \(100 ms\).*cut 10 upgraded connection/.test(l.msg)), JSON.stringify(lines.map(l => l.msg)))
  assert.deepEqual(seen.filter(e => e.name === 'a').map(e => [e.cut, e.during, e.upgraded]), [[10, 'restart', 10]])
})

test('a stop while an old generation keeps WebSockets: it says goodbye too (1001) at once, and stop() waits for neither timeout', async (t) => {
  const builds: Builds = { count: 0 }
  const pool = makePool(t, pluginHandler(builds))
  await pool.start()
  const url = wsUrl(pool)
  const old = await openClients(url, 10)
  await pool.load('a')!.restart()
  const fresh = await openClients(url, 10)
  assert.deepEqual(pool.load('a')!.status.retiring.map(r => r.upgraded), [10])
  const began = Date.now()
  await pool.stop({ timeout: 5000 })
  assert.ok(Date.now() - began < 2000)
  const codes = (await Promise.all([...old, ...fresh].map(c => c.closed))).map(c => c.code)
  assert.deepEqual(new Set(codes), new Set([1001]))
})

test('the goodbyes of many connections are spread over upgradeCloseWindow', async (t) => {
  const pool = makePool(t, pluginHandler({ count: 0 }), { upgradeCloseWindow: 400 })
  await pool.start()
  const clients = await openClients(wsUrl(pool), 300, 50)
  await pool.stop({ timeout: 10_000 })
  const at = (await Promise.all(clients.map(c => c.closed))).map(c => c.at).sort((a, b) => a - b)
  // One per millisecond at most: 300 goodbyes take at least 300 ms (at most the 400 ms window).
  const spread = at.at(-1)! - at[0]!
  assert.ok(spread >= 200, `the goodbyes arrived over ${Math.round(spread)} ms`)
  // Evenly: the first third came well before the last third.
  assert.ok(at[200]! - at[100]! >= 50)
})

test('onClose hooks run after the last upgraded connection is gone; preClose at the start of the stop', async (t) => {
  const events: string[] = []
  let open = 0
  const handler: Handler = async (app) => {
    await app.register(pluginHandler({ count: 0 }) as FastifyPluginAsync)
    app.addHook('onRequest', async (request) => {
      if (!request.ws) return
      open++
      request.raw.socket.once('close', () => { open-- })
    })
    app.addHook('preClose', async () => { events.push(`preClose ${app.poolClosing?.reason ?? '-'} open=${open}`) })
    app.addHook('onClose', async () => { events.push(`onClose open=${open}`) })
  }
  const pool = makePool(t, handler)
  await pool.start()
  await openClients(wsUrl(pool), 5)
  await pool.stop({ timeout: 5000 })
  assert.deepEqual(events, ['preClose stop open=5', 'onClose open=0'])
})

test('a stop with handOff says 1012 (another process serves the port)', async (t) => {
  const pool = makePool(t, pluginHandler({ count: 0 }))
  await pool.start()
  const clients = await openClients(wsUrl(pool), 5)
  await pool.load('a')!.stop({ timeout: 5000, handOff: true })
  const codes = (await Promise.all(clients.map(c => c.closed))).map(c => c.code)
  assert.deepEqual(new Set(codes), new Set([1012]))
})
