// Modern TLS by default: TLS 1.2 with ECDHE key exchange and AEAD ciphers
// only (Mozilla's intermediate profile), TLS 1.3, nothing older. Real
// handshakes from a Node TLS client that offers one suite at a time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type SecureVersion } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createPool, validateConfig } from 'fastify-pool'
import { DEFAULT_CIPHERS } from 'fastify-pool/config'
import { certPath, pem } from './fixtures/lifecycle.ts'

function handshake (port: number, options: { ciphers?: string, minVersion?: SecureVersion, maxVersion?: SecureVersion }): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: pem('ca.crt'), ...options })
    socket.once('secureConnect', () => { const suite = socket.getCipher().standardName; socket.end(); resolve(`ok ${suite}`) })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(`failed ${err.code ?? err.message}`))
  })
}

test('TLS 1.2 with ECDHE and AEAD only, TLS 1.3, and nothing older', async (t) => {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0', tls: { cert: certPath('server.crt'), key: certPath('server.key') } }] })
  t.after(() => pool.stop())
  await pool.start()
  const port = (pool.load('a')?.address as AddressInfo).port
  const tls12 = { minVersion: 'TLSv1.2' as const, maxVersion: 'TLSv1.2' as const }

  assert.equal(await handshake(port, { ...tls12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), 'ok TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256')
  assert.match(await handshake(port, { ...tls12, ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' }), /^ok /)
  assert.match(await handshake(port, { minVersion: 'TLSv1.3' }), /^ok TLS_/)
  // CBC suites (LUCKY13) and RSA key exchange (no forward secrecy) are refused.
  assert.match(await handshake(port, { ...tls12, ciphers: 'ECDHE-RSA-AES128-SHA256' }), /^failed/)
  assert.match(await handshake(port, { ...tls12, ciphers: 'ECDHE-RSA-AES128-SHA' }), /^failed/)
  assert.match(await handshake(port, { ...tls12, ciphers: 'AES128-GCM-SHA256' }), /^failed/)
  // TLS 1.1 is refused (the client may also refuse to offer it; either way no session).
  assert.match(await handshake(port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), /^failed/)
})

test('ciphers and ecdhCurve can be set per listener and in defaults; unknown ones are reported', async (t) => {
  const tls = { cert: certPath('server.crt'), key: certPath('server.key') }
  const [a, b] = validateConfig({
    servers: [{ name: 'a', listen: ':1', tls: { ...tls, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' } }, { name: 'b', listen: ':2' }],
    defaults: { tls: { ...tls, ecdhCurve: 'prime256v1' } }
  })
  assert.equal(a?.tls === undefined ? undefined : a.tls.ciphers, 'ECDHE-RSA-AES256-GCM-SHA384')
  assert.equal(b?.tls === undefined ? undefined : b.tls.ecdhCurve, 'prime256v1')
  assert.throws(() => validateConfig({ servers: [{ name: 'c', listen: ':3', tls: { ...tls, ciphers: 'NOT-A-CIPHER' } }] }), (err: { code: string, errors: Array<{ path: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors.map(e => e.path), ['servers[0].tls.ciphers'])
    return true
  })
  assert.match(DEFAULT_CIPHERS, /^TLS_AES_128_GCM_SHA256:/)
  assert.doesNotMatch(DEFAULT_CIPHERS, /CBC|AES\d+-SHA|^AES|:AES/)

  // A listener restricted to one suite serves only that one.
  const pool = createPool({ servers: [{ name: 'only', listen: '127.0.0.1:0', tls: { ...tls, ciphers: 'ECDHE-RSA-AES256-GCM-SHA384', minVersion: 'TLSv1.2' } }] })
  t.after(() => pool.stop())
  await pool.start()
  const port = (pool.load('only')?.address as AddressInfo).port
  assert.match(await handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }), /^failed/)
  assert.equal(await handshake(port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' }), 'ok TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384')
})
