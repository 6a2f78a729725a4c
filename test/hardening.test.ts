// Bad input never crashes: every wrong value gives FST_POOL_VALIDATE at its
// exact path, quoted values are bounded, nothing is read from disk for a
// field the schema refused, secrets never reach a log, certificates that
// expire are visible.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPool, validateConfig, type ValidationIssue } from 'fastify-pool'
import { createDevCertificate, writeDevCertificate } from '../packages/fastify-pool-cli/src/dev-cert.ts'
import { missingCertificates } from '../packages/fastify-pool-cli/src/config-file.ts'
import { BIN, logLines, run, tempDir, TLS } from './fixtures/cli.ts'
import { memoryLogger } from './fixtures/lifecycle.ts'

const cert = join(TLS, 'server.crt')
const key = join(TLS, 'server.key')

function issuesOf (fn: () => unknown): ValidationIssue[] {
  try {
    fn()
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'FST_POOL_VALIDATE', `expected FST_POOL_VALIDATE, got ${String(err)}`)
    return (err as { errors: ValidationIssue[] }).errors
  }
  assert.fail('expected a validation error')
}

const paths = (issues: ValidationIssue[]): string[] => issues.map(i => i.path)

test('non-string certificate fields are reported at their path, never a TypeError', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ cert: 123, key }, 'servers[0].tls.cert'],
    [{ cert, key, ca: [1, 2] }, 'servers[0].tls.ca'],
    [{ cert, key: ['a', 'b'] }, 'servers[0].tls.key'],
    [{ cert: null, key }, 'servers[0].tls.cert'],
    [{ cert: { path: cert }, key }, 'servers[0].tls.cert']
  ]
  for (const [tls, path] of cases) {
    const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':1', tls } as never] }))
    assert.ok(paths(issues).some(p => p.startsWith(path)), `${JSON.stringify(tls)}: ${JSON.stringify(issues)}`)
  }
  // Under defaults too.
  const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':1' }], defaults: { tls: { cert: 5, key } } as never }))
  assert.ok(paths(issues).includes('defaults.tls.cert'), JSON.stringify(issues))
})

test('a mistake inside a union-typed field is reported at its inner path', () => {
  const issues = issuesOf(() => validateConfig({
    servers: [
      { name: 'a', listen: ':1', tls: { cert, key, minVersion: 'TLSv1' } },
      { name: 'b', listen: ':2', tls: { certt: cert, key } },
      { name: 'c', listen: ':3', tls: { cert, key, requestCert: 'yes' } },
      { name: 'd', listen: ':4', health: { liveness: 'healthz' } }
    ] as never
  }))
  const byPath = new Map(issues.map(i => [i.path, i.message]))
  assert.equal(byPath.get('servers[0].tls.minVersion'), 'must be "TLSv1.2" or "TLSv1.3" (got "TLSv1")')
  assert.equal(byPath.get('servers[1].tls.certt'), 'is not a known option; did you mean "cert"?')
  assert.ok(byPath.has('servers[2].tls.requestCert'), JSON.stringify(issues))
  assert.ok(byPath.has('servers[3].health.liveness'), JSON.stringify(issues))
  assert.ok(!issues.some(i => /must be an object or false/.test(i.message)), 'no blanket message on the union itself')
})

test('a huge value is quoted as a short prefix with its length', () => {
  const huge = 'a'.repeat(30_000_000)
  const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':1', expose: huge }] }))
  const message = issues.find(i => i.path === 'servers[0].expose')?.message ?? ''
  assert.ok(message.length < 200, `the message is ${message.length} characters long`)
  assert.match(message, /"a+…" \(30,000,000 characters\)/)
})

test('inline key material that is not PEM is never echoed', () => {
  const secret = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nTOPSECRETKEYMATERIAL\n'
  const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':1', tls: { cert, key: secret } }] }))
  const text = JSON.stringify(issues)
  assert.ok(issues.some(i => i.path === 'servers[0].tls.key'), text)
  assert.ok(!text.includes('TOPSECRET'), `the key appears in ${text}`)
})

test('the status of a TLS listener names its certificate; an expired one is a warning at start', async (t) => {
  const dir = tempDir(t)
  const { cert: expired, key: expiredKey } = await createDevCertificate({ days: -1 })
  writeFileSync(join(dir, 'old.crt'), expired)
  writeFileSync(join(dir, 'old.key'), expiredKey)
  const { logger, lines } = memoryLogger('info')
  const pool = createPool({
    servers: [
      { name: 'old', listen: '127.0.0.1:0', tls: { cert: join(dir, 'old.crt'), key: join(dir, 'old.key') } },
      { name: 'good', listen: '127.0.0.1:0', tls: { cert, key } }
    ],
    logger
  })
  t.after(() => pool.stop())
  await pool.start()
  const old = pool.load('old')?.status.certificate
  assert.ok(old !== undefined && old.daysLeft < 0, JSON.stringify(old))
  assert.match(old.subject, /fastify-pool development certificate/)
  const good = pool.load('good')?.status.certificate
  assert.ok(good !== undefined && good.daysLeft > 7)
  const warnings = lines.filter(l => l.level === 40 && /TLS certificate/.test(String(l.msg)))
  assert.equal(warnings.length, 1, JSON.stringify(lines.map(l => l.msg)))
  assert.equal(warnings[0]?.listener, 'old')
  assert.match(String(warnings[0]?.msg), /expired on/)
})

test('--dev-cert renews its own certificate when it expires within 7 days, and leaves other certificates alone', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'certs'))
  await writeDevCertificate(join(dir, 'certs', 'dev.crt'), join(dir, 'certs', 'dev.key'), { days: 2 })
  writeFileSync(join(dir, 'pool.yaml'), [
    'servers:',
    '  - { name: dev, listen: "127.0.0.1:0", tls: { cert: certs/dev.crt, key: certs/dev.key } }',
    `  - { name: mine, listen: "127.0.0.1:0", tls: { cert: ${JSON.stringify(cert)}, key: ${JSON.stringify(key)} } }`
  ].join('\n'))
  const due = await missingCertificates(join(dir, 'pool.yaml'))
  assert.deepEqual(due.map(p => p.cert), [join(dir, 'certs', 'dev.crt')])
  await writeDevCertificate(join(dir, 'certs', 'dev.crt'), join(dir, 'certs', 'dev.key'))
  assert.deepEqual(await missingCertificates(join(dir, 'pool.yaml')), [], 'a fresh one is kept')
})

test('the command never logs a private key or its passphrase, even at debug level', async (t) => {
  const dir = tempDir(t)
  const { cert: pem, key: keyPem } = await createDevCertificate()
  writeFileSync(join(dir, 'pool.yaml'), [
    'defaults: { logLevel: debug }',
    'servers:',
    '  - name: a',
    '    listen: "127.0.0.1:0"',
    // Placeholders the command fills from the environment.
    '    tls: { cert: "$' + '{CERT}", key: "$' + '{KEY}", passphrase: "$' + '{PASS}" }'
  ].join('\n'))
  const child = run(t, [BIN, 'start', '--json', join(dir, 'pool.yaml')], { env: { CERT: pem, KEY: keyPem, PASS: 'hunter2-passphrase' } })
  await child.waitFor(out => /pool started|could not start/.test(out))
  child.proc.kill('SIGTERM')
  await child.exited
  const all = child.stdout() + child.stderr()
  const keyBody = keyPem.split('\n')[1] ?? 'unused'
  assert.ok(logLines(all).some(l => l.msg === 'configuration loaded'), 'the configuration was logged at debug')
  assert.ok(!all.includes(keyBody), 'the private key is not in the output')
  assert.ok(!all.includes('hunter2-passphrase'), 'the passphrase is not in the output')
  assert.ok(all.includes('[redacted]'))
})
