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
  assert.match(String(changes.at(-1)?.error?.message), /EADDRINUSE/)
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
