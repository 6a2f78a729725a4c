// Property: whatever JSON (or YAML) value stands in any field of a listener or
// of `defaults`, validateConfig() returns, or throws FST_POOL_VALIDATE whose
// issues all carry a path and a message. No other error escapes. Bounded runs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { stringify } from 'yaml'
import { validateConfig } from 'fastify-pool'
import { loadConfigFile } from '../packages/fastify-pool-cli/src/config-file.ts'
import { tempDir, TLS } from './fixtures/cli.ts'

const LISTENER_FIELDS = ['name', 'listen', 'expose', 'handler', 'disabled', 'optional', 'tls', 'http2', 'connectionTimeout', 'keepAliveTimeout', 'requestTimeout', 'headersTimeout', 'sendTimeout', 'bodyLimit', 'logLevel', 'health', 'fastify']
const DEFAULT_FIELDS = ['tls', 'connectionTimeout', 'keepAliveTimeout', 'requestTimeout', 'headersTimeout', 'sendTimeout', 'bodyLimit', 'logLevel', 'health', 'stopTimeout']
const TLS_FIELDS = ['cert', 'key', 'ca', 'passphrase', 'minVersion', 'requestCert', 'rejectUnauthorized', 'ciphers', 'ecdhCurve']

// Values that look almost right are where crashes hide: the right type with a
// wrong shape, paths to real and missing files, nested objects of the fields.
const near = fc.oneof(
  fc.constantFrom(join(TLS, 'server.crt'), join(TLS, 'server.key'), 'missing.pem', '-----BEGIN CERTIFICATE-----\nxx', '127.0.0.1:0', ':0', 'unix:/tmp/x.sock', '/healthz', 'TLSv1.2', 'info'),
  fc.record(Object.fromEntries(TLS_FIELDS.map(f => [f, fc.jsonValue({ maxDepth: 2 })])), { requiredKeys: [] }),
  fc.record({ liveness: fc.jsonValue({ maxDepth: 1 }), readiness: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] })
)
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), near)

const listener = fc.record(Object.fromEntries(LISTENER_FIELDS.map(f => [f, anyValue])), { requiredKeys: [] })
const defaults = fc.record(Object.fromEntries(DEFAULT_FIELDS.map(f => [f, anyValue])), { requiredKeys: [] })

function check (run: () => unknown): void {
  try {
    run()
  } catch (err) {
    assert.equal((err as { code?: unknown }).code, 'FST_POOL_VALIDATE', `another error escaped: ${(err as Error).stack}`)
    const issues = (err as { errors?: Array<{ path: unknown, message: unknown }> }).errors
    assert.ok(Array.isArray(issues) && issues.length > 0, 'the error lists its problems')
    for (const i of issues) {
      assert.ok(typeof i.path === 'string' && i.path.length > 0, `an issue without a path: ${JSON.stringify(i)}`)
      assert.ok(typeof i.message === 'string' && i.message.length > 0 && i.message.length < 2000, `a bad message: ${JSON.stringify(i).slice(0, 300)}`)
    }
  }
}

test('validateConfig() on arbitrary values in every field returns or throws FST_POOL_VALIDATE with paths', () => {
  fc.assert(fc.property(fc.array(listener, { maxLength: 3 }), defaults, (servers, d) => {
    check(() => validateConfig({ servers: servers as never, defaults: d as never }))
  }), { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) })
})

test('the file loader on arbitrary YAML documents does the same', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'pool.yaml')
  await fc.assert(fc.asyncProperty(fc.array(listener, { maxLength: 2 }), defaults, async (servers, d) => {
    writeFileSync(file, stringify({ defaults: d, servers }))
    try {
      await loadConfigFile(file)
    } catch (err) {
      check(() => { throw err })
    }
  }), { numRuns: Math.ceil(Number(process.env.PROPERTY_RUNS ?? 300) / 5) })
})
