// Request ids are unique across the listeners and generations of a process,
// and every request log line says which listener and generation served it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool } from 'fastify-pool'
import { memoryLogger } from './fixtures/lifecycle.ts'

test('request ids name the listener and generation; request log lines carry both', async (t) => {
  const { logger, lines } = memoryLogger('info')
  const pool = createPool({
    servers: [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/id', async (request) => request.id) },
    logger
  })
  t.after(() => pool.stop())
  await pool.start()
  const ids: string[] = []
  for (const name of ['public', 'admin', 'public']) ids.push((await (await fetch(`${pool.load(name)?.url}/id`)).text()))
  await pool.restart()
  ids.push((await (await fetch(`${pool.load('public')?.url}/id`)).text()))
  assert.deepEqual(ids, ['public-1-1', 'admin-1-1', 'public-1-2', 'public-2-1'])
  assert.equal(new Set(ids).size, ids.length, 'no id repeats')
  const completed = lines.filter(l => l.msg === 'request completed')
  assert.ok(completed.length >= 4)
  for (const l of completed) {
    assert.ok(typeof l.listener === 'string' && typeof l.generation === 'number', JSON.stringify(l))
    assert.ok(String(l.reqId).startsWith(`${String(l.listener)}-${String(l.generation)}-`), JSON.stringify(l))
  }
})

test('a genReqId of the listener\'s own wins', async (t) => {
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0', fastify: { genReqId: () => 'mine' } }],
    handlers: async (app) => { app.get('/id', async (request) => request.id) }
  })
  t.after(() => pool.stop())
  assert.equal((await pool.inject('a', '/id')).body, 'mine')
})
