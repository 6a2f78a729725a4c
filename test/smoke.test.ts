import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool } from 'fastify-pool'

test('a pool starts, serves and stops', async () => {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: async (app) => { app.get('/', async () => process.version) } })
  await pool.start()
  const res = await fetch(`${pool.load('a')?.url}/`)
  assert.equal(await res.text(), process.version)
  await pool.stop()
  assert.equal(pool.isRunning(), false)
})
