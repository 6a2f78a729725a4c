// The package exports the plugin as default and named export, wrapped by
// fastify-plugin with its metadata, next to the rest of the public API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as pkg from 'fastify-pool'
import fastifyPoolDefault, { fastifyPool } from 'fastify-pool'
import * as control from 'fastify-pool/control'
import * as monitor from 'fastify-pool/monitor'
import * as metrics from 'fastify-pool/metrics'
import * as config from 'fastify-pool/config'

test('the default and the named export are the same plugin', () => {
  assert.equal(typeof fastifyPool, 'function')
  assert.equal(fastifyPoolDefault, fastifyPool)
  assert.equal(pkg.default, pkg.fastifyPool)
})

test('the plugin carries the fastify-plugin metadata', () => {
  const plugin = fastifyPool as unknown as Record<symbol, unknown>
  assert.equal(plugin[Symbol.for('skip-override')], true)
  assert.equal(plugin[Symbol.for('fastify.display-name')], 'fastify-pool')
  assert.deepEqual(plugin[Symbol.for('plugin-meta')], { fastify: '5.x || 6.x', name: 'fastify-pool' })
})

test('the health, monitor and status-route API is exported', () => {
  assert.equal(typeof pkg.createPool, 'function')
  assert.equal(typeof pkg.Pool.prototype.monitor, 'function')
  assert.equal(typeof pkg.Pool.prototype.monitorNames, 'function')
  assert.equal(typeof pkg.Pool.prototype.startMonitor, 'function')
  assert.equal(typeof pkg.Pool.prototype.stopMonitor, 'function')
  assert.equal(typeof pkg.poolStatusRoute, 'function')
  assert.equal(typeof control.poolStatus, 'function')
  assert.deepEqual(monitor.MONITOR_DEFAULTS, { interval: 5000, timeout: 2000, rise: 2, fall: 3, history: 10 })
  assert.equal(Object.isFrozen(monitor.MONITOR_DEFAULTS), true)
  assert.equal(new pkg.errors.FST_POOL_MONITOR('x').code, 'FST_POOL_MONITOR')
})

test('the main entry has at most 20 runtime exports; the parts are at their own entry points', () => {
  const runtime = Object.keys(pkg).sort()
  assert.ok(runtime.length <= 20, `${runtime.length} runtime exports: ${runtime.join(', ')}`)
  assert.deepEqual(runtime, ['BUILTIN_DEFAULTS', 'CHANNELS', 'HEALTH_RESPONSE_SCHEMA', 'Listener', 'Pool', 'REDACT_PATHS', 'createPool', 'default', 'errors', 'fastifyPool', 'formatAddress', 'hasIssues', 'isListener', 'isPool', 'isPoolError', 'isResolvedOptions', 'parseListen', 'poolStatusRoute', 'resolvePoolOptions', 'validateConfig'])
  assert.deepEqual(Object.keys(metrics).sort(), ['DURATION_BUCKETS', 'PoolMetrics', 'UNMATCHED_ROUTE', 'clusterMetrics', 'metricsIssues'])
  assert.deepEqual(Object.keys(control).sort(), ['PoolControl', 'ProcessSampler', 'canaryEnd', 'controlAction', 'controlIssues', 'isLocalOnly', 'poolStatus', 'poolStatusRoute'])
  assert.deepEqual(Object.keys(monitor).sort(), ['AUTO_RESTART_DEFAULTS', 'MONITOR_DEFAULTS', 'PoolMonitor', 'monitorIssues', 'monitorName'])
  assert.deepEqual(Object.keys(config).sort(), ['DEFAULT_CIPHERS', 'DEFAULT_ECDH_CURVE', 'EXPIRY_WARNING_DAYS', 'HealthSchema', 'ListenerConfigSchema', 'PoolDefaultsSchema', 'PoolFileSchema', 'TlsSchema', 'certificateInfo', 'fileFieldIssues', 'isWorkers', 'workersProblem'])
})

test('what is published points where the source points: publishConfig.exports is exports without the source condition', () => {
  for (const name of ['fastify-pool', 'fastify-pool-cli', 'create-fastify-pool']) {
    const manifest = JSON.parse(readFileSync(new URL(`../packages/${name}/package.json`, import.meta.url), 'utf8')) as { exports?: Record<string, unknown>, publishConfig?: { exports?: Record<string, unknown> } }
    const published = manifest.publishConfig?.exports
    if (published === undefined) continue
    const expected = Object.fromEntries(Object.entries(manifest.exports ?? {}).map(([k, v]) => [k, typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).filter(([c]) => c !== 'source')) : v]))
    assert.deepEqual(published, expected, name)
  }
})
