// Certificates change without a restart (setTls swaps the live server's
// secure context), and a restart or reconfigure re-reads certificate files.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { createPool, validateConfig, type Listener, type ListenerConfig, type Pool } from 'fastify-pool'
import { certPath, keepAliveAgent, pem, peerFingerprint, send } from './fixtures/lifecycle.ts'

const CA = pem('ca.crt')
const FIRST = new X509Certificate(pem('server.crt')).fingerprint256
const SECOND = new X509Certificate(pem('server2.crt')).fingerprint256
const handlers = async (app: import('fastify').FastifyInstance) => { app.get('/', async () => 'ok') }

function makePool (t: TestContext, servers: ListenerConfig[]): Pool {
  const pool = createPool({ servers, handlers })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const portOf = (l: Listener): number => (l.address as AddressInfo).port
const tls1 = { cert: certPath('server.crt'), key: certPath('server.key') }
const tls2 = { cert: certPath('server2.crt'), key: certPath('server2.key') }

test('the fixtures hold two different certificates', () => {
  assert.notEqual(FIRST, SECOND)
})

test('setTls() swaps the certificate on the live server: new connections see it, open ones keep working, no restart', async (t) => {
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0', tls: tls1 }])
  await pool.start()
  const listener = pool.load('a')!
  const port = portOf(listener)
  assert.equal(await peerFingerprint(port, CA), FIRST)
  const agent = keepAliveAgent(true, CA)
  t.after(() => agent.destroy())
  assert.equal((await send(`${listener.url}/`, { agent })).status, 200)
  const open = Object.values(agent.freeSockets).flat()[0]
  assert.ok(open, 'a kept-alive TLS connection')

  await listener.setTls(tls2)
  assert.equal(await peerFingerprint(port, CA), SECOND)
  assert.equal(listener.status.generation, 1, 'no restart')
  assert.equal(portOf(listener), port)
  assert.equal(listener.config.tls?.cert, tls2.cert)
  // The connection opened before the swap is reused and still works.
  assert.equal((await send(`${listener.url}/`, { agent })).status, 200)
  assert.equal(Object.values(agent.freeSockets).flat()[0], open, 'the same connection served it')
})

test('setTls() with only cert and key keeps client-certificate checks', async (t) => {
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0', tls: { ...tls1, ca: certPath('ca.crt'), requestCert: true } }])
  await pool.start()
  const listener = pool.load('a')!
  const withCert = { ca: CA, cert: pem('client.crt'), key: pem('client.key') }
  assert.equal((await send(`${listener.url}/`, withCert)).status, 200)
  await assert.rejects(send(`${listener.url}/`, { ca: CA }), 'no client certificate, refused')

  await listener.setTls(tls2)
  // TLS 1.3: the client's handshake ends before the server checks its certificate.
  assert.equal(await peerFingerprint(portOf(listener), CA), SECOND)
  assert.equal((await send(`${listener.url}/`, withCert)).status, 200)
  await assert.rejects(send(`${listener.url}/`, { ca: CA }), 'a client without a certificate is still refused')
  assert.equal(listener.config.tls?.requestCert, true)
})

test('setTls() with bad material rejects with FST_POOL_TLS naming the field, and changes nothing', async (t) => {
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0', tls: tls1 }])
  await pool.start()
  const listener = pool.load('a')!
  const before = listener.config
  await assert.rejects(listener.setTls({ cert: certPath('not-pem.txt'), key: tls2.key }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_POOL_TLS')
    assert.match(err.message, /listener "a"/)
    assert.match(err.message, /tls\.cert: .*not-pem\.txt is not PEM/)
    return true
  })
  await assert.rejects(listener.setTls({ cert: tls2.cert, key: tls1.key }), { code: 'FST_POOL_TLS' }, 'a key that does not match the certificate')
  await assert.rejects(listener.setTls(null as never), { code: 'FST_POOL_TLS' })
  assert.equal(listener.config, before)
  assert.equal(await peerFingerprint(portOf(listener), CA), FIRST)
})

test('setTls() on a running plain HTTP listener rejects; on a stopped one it takes effect at the next start', async (t) => {
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0' }])
  await pool.start()
  const listener = pool.load('a')!
  await assert.rejects(listener.setTls(tls1), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_POOL_TLS')
    assert.match(err.message, /plain HTTP on a live socket/)
    return true
  })
  assert.equal(listener.config.tls, undefined)

  await pool.stop()
  await listener.setTls(tls1)
  await pool.start()
  assert.match(listener.url ?? '', /^https:/)
  assert.equal(await peerFingerprint(portOf(listener), CA), FIRST)
  assert.equal((await send(`${listener.url}/`, { ca: CA })).body, 'ok')
})

test('restart() re-reads the certificate files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-tls-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  copyFileSync(certPath('server.crt'), cert)
  copyFileSync(certPath('server.key'), key)
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0', tls: { cert, key } }])
  await pool.start()
  const listener = pool.load('a')!
  const port = portOf(listener)
  assert.equal(await peerFingerprint(port, CA), FIRST)

  // Renewed on disk: nothing changes until the listener reloads.
  copyFileSync(certPath('server2.crt'), cert)
  copyFileSync(certPath('server2.key'), key)
  assert.equal(await peerFingerprint(port, CA), FIRST)
  await pool.restart()
  assert.equal(portOf(listener), port)
  assert.equal(await peerFingerprint(port, CA), SECOND)
})

test('reconfigure() with new TLS settings on the same bind swaps the certificate on the same socket', async (t) => {
  const servers: ListenerConfig[] = [{ name: 'a', listen: '127.0.0.1:0', tls: tls1 }]
  const pool = makePool(t, servers)
  await pool.start()
  const listener = pool.load('a')!
  const port = portOf(listener)
  const next = validateConfig({ servers: [{ ...servers[0]!, tls: tls2 }], handlers })[0]!
  await listener.reconfigure(next)
  assert.equal(portOf(listener), port)
  assert.equal(listener.status.generation, 2)
  assert.equal(await peerFingerprint(port, CA), SECOND)

  const plain = validateConfig({ servers: [{ ...servers[0]!, tls: false }], handlers })[0]!
  await assert.rejects(listener.reconfigure(plain), /serves HTTPS and cannot switch to HTTP;/)
  assert.equal(await peerFingerprint(port, CA), SECOND)
})
