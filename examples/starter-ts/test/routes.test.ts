// The routes, tested without sockets: pool.inject() runs a request through one
// listener's Fastify instance.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ControlStatusBody, PoolStatusBody } from 'fastify-pool'
import type { Item } from '../routes/public.ts'
import { pool } from './helpers.ts'

test('the public API answers on the public listener', async (t) => {
  const p = await pool(t)
  const res = await p.inject('public', '/')
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json(), { hello: 'world' })
})

test('items are validated', async (t) => {
  const p = await pool(t)
  assert.deepEqual((await p.inject('public', '/items/7')).json<Item>(), { id: 7, name: 'item 7' })
  assert.equal((await p.inject('public', '/items/zero')).statusCode, 400)
})

test('the control API and the health report are served by the admin listener only', async (t) => {
  const p = await pool(t)
  const res = await p.inject('admin', '/pool')
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json<ControlStatusBody>().listeners.map((l) => [l.name, l.state]), [['public', 'stopped'], ['secure', 'stopped'], ['admin', 'stopped']])
  assert.equal((await p.inject('public', '/pool')).statusCode, 404)
  const health = await p.inject('admin', '/health')
  assert.deepEqual(health.json<PoolStatusBody>().listeners.map((l) => l.name), ['public', 'secure', 'admin'])
  assert.equal((await p.inject('public', '/health')).statusCode, 404)
})

test('every listener answers liveness', async (t) => {
  const p = await pool(t)
  for (const name of ['public', 'secure', 'admin']) {
    assert.equal((await p.inject(name, '/healthz')).statusCode, 200, name)
  }
})

test('the admin listener serves Prometheus metrics of every listener', async (t) => {
  const p = await pool(t)
  await p.inject('public', '/items/3')
  const res = await p.inject('admin', '/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /http_request_duration_seconds_count\{listener="public",method="GET",route="\/items\/:id",status_code="200"\} 1/)
  assert.equal((await p.inject('public', '/metrics')).statusCode, 404)
})
