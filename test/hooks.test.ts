// The pool's lifecycle hooks (docs/hooks.md): the building ones shape each
// generation, the others are told what happened, in order, on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { createPool, isPoolError, type BuildInfo, type Pool, type RetireEvent, type StateChange } from 'fastify-pool'
import { deferred, memoryLogger, send } from './fixtures/lifecycle.ts'

const url = (pool: Pool, name: string, path = '/'): string => `http://127.0.0.1:${(pool.load(name)?.address as AddressInfo).port}${path}`

test('onOptions and onBuild shape every generation; onSwap, onRetire and onStateChange follow a restart and a stop', async (t) => {
  const events: string[] = []
  const builds: Array<Omit<BuildInfo, 'exempt' | 'listener' | 'pool'> & { pool: unknown }> = []
  const retired: RetireEvent[] = []
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/', async (request) => ({ id: request.id })) },
    hooks: {
      // Each generation's request ids say which hook made them.
      onOptions: (options, info) => ({ ...options, genReqId: () => `hooked-${info.name}-${info.generation}` }),
      onBuild: [
        (app, info) => {
          builds.push({ name: info.name, bind: info.bind, generation: info.generation, http2: info.http2, factory: info.factory, pool: info.pool })
          app.get('/built', async () => ({ generation: info.generation }))
        }
      ],
      onStateChange: (change) => { if (change.name === 'a') events.push(`${change.from}->${change.to}@${change.generation}`) },
      onSwap: (swap) => { if (swap.name === 'a') events.push(`swap ${swap.previous}->${swap.generation}`) },
      onRetire: (event) => { retired.push(event); if (event.name === 'a') events.push(`retired ${event.generation} (${event.during})`) }
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  assert.deepEqual(JSON.parse((await send(url(pool, 'a'))).body), { id: 'hooked-a-1' })
  assert.deepEqual(JSON.parse((await send(url(pool, 'b', '/built'))).body), { generation: 1 })
  assert.deepEqual(builds.map(b => `${b.name}@${b.generation}`).sort(), ['a@1', 'b@1'])
  assert.ok(builds.every(b => b.pool === pool && b.factory === false && b.http2 === false))

  const [report] = await pool.filter('name', 'a').restart()
  await report?.retired
  assert.deepEqual(JSON.parse((await send(url(pool, 'a'))).body), { id: 'hooked-a-2' })
  assert.deepEqual(JSON.parse((await send(url(pool, 'a', '/built'))).body), { generation: 2 })
  await pool.stop()
  assert.deepEqual(events, ['stopped->starting@0', 'starting->running@1', 'swap 1->2', 'retired 1 (restart)', 'running->draining@2', 'draining->stopped@0', 'retired 2 (stop)'])
  assert.deepEqual(retired.filter(r => r.name === 'b').map(r => `${r.generation} ${r.during} cut ${r.cut}`), ['1 stop cut 0'])
})

test('onCut says what a deadline cut; onReload says what a reload did or why it was refused', async (t) => {
  const cuts: string[] = []
  const reloads: string[] = []
  const arrived = deferred()
  const pool = createPool({
    servers: [{ name: 'slow', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.get('/', async () => { arrived.resolve(); return await new Promise(() => {}) })
    }
  })
  pool.addHook('onCut', (event) => { cuts.push(`${event.name} ${event.during} ${event.cut}`) })
  pool.addHook('onReload', (event) => { reloads.push(event.error === undefined ? `ok ${event.report?.unchanged.join(',')}` : `refused ${isPoolError(event.error) ? event.error.code : 'other'}`) })
  await pool.start()
  const pending = send(url(pool, 'slow')).catch((err: Error) => err)
  await arrived.promise
  await pool.reload({ servers: [{ name: 'slow', listen: '127.0.0.1:0' }] }).catch(() => {})
  await assert.rejects(pool.reload({ servers: [{ name: 'slow', listen: 'not an address' }] }))
  const [report] = await pool.stop({ timeout: 50 })
  assert.equal(report?.cut, 1)
  assert.ok((await pending) instanceof Error)
  assert.deepEqual(cuts, ['slow stop 1'])
  assert.equal(reloads.length, 2)
  assert.equal(reloads[1], 'refused FST_POOL_VALIDATE')
  t.after(() => pool.stop({ timeout: 0 }))
})

test('a told hook that throws is logged and the others still run; an onBuild that throws fails the restart and the old generation serves on', async (t) => {
  const { logger, lines } = memoryLogger('info')
  let fail = false
  const later: StateChange[] = []
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    logger,
    handlers: async (app) => { app.get('/', async () => 'ok') },
    hooks: {
      onStateChange: [() => { throw new Error('broken hook') }, (change) => { later.push(change) }],
      onBuild: () => { if (fail) throw new Error('cannot build') }
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  assert.deepEqual(later.map(c => c.to), ['starting', 'running'])
  const logged = lines.filter(l => l.msg === 'the onStateChange hook failed')
  assert.equal(logged.length, 2)
  assert.equal((logged[0]?.err as { message?: string } | undefined)?.message, 'broken hook')
  fail = true
  await assert.rejects(pool.restart(), (err: Error & { code?: string }) => err.code === 'FST_POOL_RESTART' && /cannot build/.test(err.message))
  const served = await send(url(pool, 'a'))
  assert.equal(served.status, 200)
  assert.equal(pool.load('a')?.status.generation, 1)
})

test('hooks are checked: unknown names get the nearest, non-functions are refused, all at once', async () => {
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], hooks: { onBild: () => {}, onSwap: 3 } as never }), (err: Error & { code?: string, errors?: Array<{ path: string, message: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors?.map(e => e.path), ['hooks.onBild', 'hooks.onSwap'])
    assert.match(err.errors?.[0]?.message ?? '', /did you mean "onBuild"/)
    return true
  })
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }] })
  const addHook = pool.addHook.bind(pool) as (name: string, fn: unknown) => unknown
  assert.throws(() => addHook('onStateChang', () => {}), (err: Error & { code?: string }) => err.code === 'FST_POOL_INVALID_ARGUMENT' && /did you mean "onStateChange"/.test(err.message))
  assert.throws(() => addHook('onSwap', null), (err: Error & { code?: string }) => err.code === 'FST_POOL_INVALID_ARGUMENT')
})

test('a clone starts with a copy of the hooks: one added to the clone is not the original\'s', async (t) => {
  const seen: string[] = []
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], hooks: { onBuild: (_app, info) => { seen.push(`shared ${info.pool === pool ? 'pool' : 'clone'}`) } } })
  const clone = pool.clone()
  clone.addHook('onBuild', () => { seen.push('clone only') })
  t.after(() => Promise.all([pool.stop({ timeout: 0 }), clone.stop({ timeout: 0 })]))
  await pool.start()
  assert.deepEqual(seen, ['shared pool'])
  await pool.stop()
  await clone.start()
  assert.deepEqual(seen, ['shared pool', 'shared clone', 'clone only'])
})
