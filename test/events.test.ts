// Every state change of a listener is published on node:diagnostics_channel,
// from the one place that changes it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createPool, type StateChange } from 'fastify-pool'
import { within } from './fixtures/lifecycle.ts'

test('fastify-pool:listener:state publishes each transition, in order, with a failure\'s error', async (t) => {
  const seen: string[] = []
  const changes: StateChange[] = []
  const onChange = (message: unknown): void => {
    const c = message as StateChange
    changes.push(c)
    seen.push(`${c.name} ${c.from}->${c.to}${c.error === undefined ? '' : ' (error)'}`)
  }
  subscribe('fastify-pool:listener:state', onChange)
  t.after(() => unsubscribe('fastify-pool:listener:state', onChange))

  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }] })
  t.after(() => pool.stop())
  await pool.start()
  const port = (pool.load('a')?.address as { port: number }).port
  await pool.restart()
  await pool.stop()
  // A second pool on the same port fails to start.
  const blocker = createPool({ servers: [{ name: 'blocker', listen: `127.0.0.1:${port}` }] })
  await blocker.start()
  t.after(() => blocker.stop())
  const busy = createPool({ servers: [{ name: 'busy', listen: `127.0.0.1:${port}` }] })
  await within(5_000, busy.start().catch(() => {}), 'the failing start')

  assert.deepEqual(seen, [
    'a stopped->starting', 'a starting->running',
    'a running->draining', 'a draining->stopped',
    'blocker stopped->starting', 'blocker starting->running',
    'busy stopped->starting', 'busy starting->failed (error)'
  ])
  assert.equal(changes[1]?.generation, 1)
  assert.equal(changes[1]?.bind, '127.0.0.1:0')
  assert.equal(changes[1]?.listener, pool.load('a'))
  assert.equal(changes[1]?.pool, pool, 'the pool that made the listener')
  assert.equal(changes.at(-1)?.pool, busy)
  assert.match(String(changes.at(-1)?.error?.message), /EADDRINUSE/)
})

test('generation swaps and cut requests have channels of their own', async (t) => {
  const swaps: Array<{ name: string, generation: number, previous: number }> = []
  const cuts: Array<{ name: string, cut: number, during: string }> = []
  const onSwap = (m: unknown): void => { swaps.push(m as typeof swaps[number]) }
  const onCut = (m: unknown): void => { cuts.push(m as typeof cuts[number]) }
  subscribe('fastify-pool:listener:generation', onSwap)
  subscribe('fastify-pool:listener:cut', onCut)
  t.after(() => { unsubscribe('fastify-pool:listener:generation', onSwap); unsubscribe('fastify-pool:listener:cut', onCut) })
  let arrived!: () => void
  const hanging = new Promise<void>(resolve => { arrived = resolve })
  const pool = createPool({
    servers: [{ name: 'e', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/hang', async () => { arrived(); await new Promise(() => {}) }) }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const url = pool.load('e')?.url ?? ''
  const request = fetch(`${url}/hang`).catch(() => 'reset')
  await within(5_000, hanging, 'the hanging request')
  const [report] = await pool.restart({ timeout: 50 })
  await report?.retired
  assert.equal(await request, 'reset')
  assert.deepEqual(swaps.filter(s => s.name === 'e').map(s => [s.generation, s.previous]), [[2, 1]])
  assert.deepEqual(cuts.filter(c => c.name === 'e').map(c => [c.cut, c.during]), [[1, 'restart']])
})

test('fastify-pool:pool:reload publishes each reload\'s report, or its error', async (t) => {
  const seen: Array<{ pool: unknown, report?: { added: string[] }, error?: Error }> = []
  const onReload = (message: unknown): void => { seen.push(message as never) }
  subscribe('fastify-pool:pool:reload', onReload)
  t.after(() => unsubscribe('fastify-pool:pool:reload', onReload))
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }] })
  t.after(() => pool.stop())
  await pool.start()
  await pool.reload({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }] })
  await pool.reload({ servers: [{ name: 'a', listen: 'nowhere' }] }).catch(() => {})
  assert.equal(seen.length, 2)
  assert.equal(seen[0]?.pool, pool)
  assert.deepEqual(seen[0]?.report?.added, ['b'])
  assert.equal((seen[1]?.error as { code?: string } | undefined)?.code, 'FST_POOL_VALIDATE')
})
