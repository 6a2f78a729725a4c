// The package exports the plugin as default and named export, wrapped by
// fastify-plugin with its metadata, next to the rest of the public API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as pkg from 'fastify-pool'
import fastifyPoolDefault, { fastifyPool } from 'fastify-pool'

test('the default and the named export are the same plugin', () => {
  assert.equal(typeof fastifyPool, 'function')
  assert.equal(fastifyPoolDefault, fastifyPool)
  assert.equal(pkg.default, pkg.fastifyPool)
})

test('the plugin carries the fastify-plugin metadata', () => {
  const plugin = fastifyPool as unknown as Record<symbol, unknown>
  assert.equal(plugin[Symbol.for('skip-override')], true)
  assert.equal(plugin[Symbol.for('fastify.display-name')], 'fastify-pool')
  assert.deepEqual(plugin[Symbol.for('plugin-meta')], { fastify: '5.x', name: 'fastify-pool' })
})

test('the health, monitor and status-route API is exported', () => {
  assert.equal(typeof pkg.createPool, 'function')
  assert.equal(typeof pkg.Pool.prototype.monitor, 'function')
  assert.equal(typeof pkg.Pool.prototype.monitorNames, 'function')
  assert.equal(typeof pkg.Pool.prototype.startMonitor, 'function')
  assert.equal(typeof pkg.Pool.prototype.stopMonitor, 'function')
  assert.equal(typeof pkg.poolStatusRoute, 'function')
  assert.equal(typeof pkg.poolStatus, 'function')
  assert.deepEqual(pkg.MONITOR_DEFAULTS, { interval: 5000, timeout: 2000, rise: 2, fall: 3, history: 10 })
  assert.equal(Object.isFrozen(pkg.MONITOR_DEFAULTS), true)
  assert.equal(new pkg.errors.FST_POOL_MONITOR('x').code, 'FST_POOL_MONITOR')
})
