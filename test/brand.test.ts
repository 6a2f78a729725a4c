// Recognising the library's objects and errors without instanceof, so that
// two copies of the package (a command's and an app's) work together.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { createPool, errors, hasIssues, isListener, isPool, isPoolError, validateConfig } from 'fastify-pool'

test('pools and listeners carry a registered brand', () => {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }] })
  assert.equal(isPool(pool), true)
  assert.equal(isListener(pool.load('a')), true)
  assert.equal(isPool(pool.load('a')), false)
  assert.equal(isPool({}), false)
  assert.equal(isPool(null), false)
  // What another copy of the package makes: the same registered symbol.
  const foreign = Object.defineProperty({}, Symbol.for('fastify-pool.pool'), { value: true })
  assert.equal(isPool(foreign), true)
})

test('isPoolError() and hasIssues() recognise errors by their code', () => {
  const start = new errors.FST_POOL_START('x')
  assert.equal(isPoolError(start), true)
  assert.equal(isPoolError(start, 'FST_POOL_START'), true)
  assert.equal(isPoolError(start, 'FST_POOL_STOP'), false)
  assert.equal(isPoolError(new Error('plain')), false)
  assert.equal(isPoolError(Object.assign(new Error('other'), { code: 'ECONNRESET' })), false)
  assert.equal(isPoolError('FST_POOL_START'), false)
  let caught: unknown
  try { validateConfig({ servers: [{ name: '', listen: 'nowhere' }] }) } catch (err) { caught = err }
  assert.equal(hasIssues(caught), true)
  assert.ok(hasIssues(caught) && caught.errors.length >= 2, 'every problem is listed')
  assert.equal(hasIssues(start), false)
})

test('the health routes declare their response schema', async (t) => {
  const schemas = new Map<string, unknown>()
  const pool = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }],
    factory: (_config, options) => {
      const app = Fastify(options)
      app.addHook('onRoute', (route) => { if (route.method === 'GET') schemas.set(route.url, route.schema?.response) })
      return app
    }
  })
  t.after(() => pool.stop())
  const res = await pool.inject('a', '/readyz')
  assert.deepEqual(JSON.parse(res.body), { status: 'stopped' })
  assert.equal(res.statusCode, 503)
  const readyz = schemas.get('/readyz') as Record<string, { properties: Record<string, unknown> }> | undefined
  assert.ok(readyz?.['200'] !== undefined && readyz['503'] !== undefined, 'the readiness route documents 200 and 503')
  assert.deepEqual(Object.keys(readyz['503'].properties), ['status'])
  assert.ok(schemas.get('/healthz') !== undefined)
})
