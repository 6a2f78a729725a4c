// resolvePoolOptions(): every option checked once, every problem at once, the
// result frozen and taken by createPool() without a second check.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool, isResolvedOptions, resolvePoolOptions, type MetricsOptions } from 'fastify-pool'

test('resolving reports every problem at once, with its path, and builds nothing', () => {
  assert.throws(() => resolvePoolOptions({
    servers: [{ name: 'a', listen: 'nope:x' }],
    metrics: { listener: 'missing' },
    logger: 3 as never
  }), (err: Error & { code?: string, errors?: Array<{ path: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    const paths = (err.errors ?? []).map(e => e.path)
    assert.ok(paths.includes('logger'), paths.join())
    assert.ok(paths.some(p => p.startsWith('servers[0]')), paths.join())
    return true
  })
  // The control token is required off loopback: a problem of the control section.
  assert.throws(() => resolvePoolOptions({ servers: [{ name: 'admin', listen: '0.0.0.0:0' }], control: {} }),
    (err: Error & { errors?: Array<{ path: string }> }) => (err.errors ?? []).some(e => e.path === 'control.token'))
})

test('the result is frozen, with the defaults applied, and resolving it again returns it', () => {
  const resolved = resolvePoolOptions({ servers: [{ name: 'admin', listen: '127.0.0.1:0' }], metrics: true, control: {} })
  assert.equal(isResolvedOptions(resolved), true)
  assert.equal(Object.isFrozen(resolved), true)
  assert.equal(Object.isFrozen(resolved.servers), true)
  assert.equal(Object.isFrozen(resolved.metrics), true)
  assert.equal(resolved.metrics?.listener, 'admin')
  assert.equal(resolved.metrics?.path, '/metrics')
  assert.equal(resolved.control?.path, '/pool')
  assert.equal(resolved.servers[0]?.bind, '127.0.0.1:0')
  assert.equal(resolvePoolOptions(resolved), resolved)
  assert.equal(isResolvedOptions({ ...resolved }), false, 'a spread is plain options again')
  assert.equal(isResolvedOptions({ servers: [] }), false)
})

test('createPool() builds from a resolved object without reading the options again', async () => {
  let reads = 0
  const metrics = new Proxy<MetricsOptions>({ listener: 'admin' }, { get (target, key, receiver) { reads++; return Reflect.get(target, key, receiver) } })
  const resolved = resolvePoolOptions({ servers: [{ name: 'admin', listen: '127.0.0.1:0' }], metrics })
  const afterResolve = reads
  assert.ok(afterResolve > 0, 'resolving reads the metrics option')
  const pool = createPool(resolved)
  assert.equal(reads, afterResolve, 'createPool() did not look at the options again')
  // And the pool has what was resolved: its metrics route on the admin listener.
  const res = await pool.inject('admin', '/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(res.body, /fastify_pool_listener_up/)
  await pool.stop()
})

test('a listener on a socket this process was not given: createPool() refuses it, resolving does not', () => {
  const options = { servers: [{ name: 'web', listen: 'systemd:web' }] }
  const resolved = resolvePoolOptions(options)
  assert.equal(resolved.servers[0]?.address.kind, 'systemd')
  assert.throws(() => createPool(resolved), (err: Error & { code?: string, errors?: Array<{ path: string }> }) =>
    err.code === 'FST_POOL_VALIDATE' && err.errors?.[0]?.path === 'servers[0].listen')
})
