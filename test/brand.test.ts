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

test('the status route declares its response schema; the health routes\' schema is exported', async (t) => {
  const { HEALTH_RESPONSE_SCHEMA, poolStatusRoute } = await import('fastify-pool')
  assert.deepEqual(Object.keys(HEALTH_RESPONSE_SCHEMA.properties), ['status'])
  let schema: unknown
  const pool = createPool({
    servers: [{ name: 'admin', listen: '127.0.0.1:0', handler: 'admin' }],
    handlers: { admin: async (app) => { await app.register(poolStatusRoute, { pool }) } },
    factory: (_config, options) => {
      const app = Fastify(options)
      app.addHook('onRoute', (route) => { if (route.url === '/pool' && route.method === 'GET') schema = route.schema?.response })
      return app
    }
  })
  t.after(() => pool.stop())
  const res = await pool.inject('admin', '/pool')
  assert.equal(res.statusCode, 200)
  const body = JSON.parse(res.body)
  assert.deepEqual(Object.keys(body).sort(), ['listeners', 'status', 'uptime'])
  assert.equal(body.listeners[0]?.name, 'admin', 'a report keeps its fields through the schema')
  assert.ok((schema as Record<string, unknown> | undefined)?.['200'] !== undefined, 'the route declares its 200 body')
})
