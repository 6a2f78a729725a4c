// Configuration validation: every problem at once with its field path, how
// defaults merge into each listener, and that bad input builds nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { BUILTIN_DEFAULTS, createPool, validateConfig, type ListenerConfig, type ValidationIssue } from 'fastify-pool'
import { tls, tlsPath } from './fixtures/client.ts'

const noop = async (_app: FastifyInstance): Promise<void> => {}

/** Run fn, which must throw FST_POOL_VALIDATE; return its issues. */
function issuesOf (fn: () => unknown): ValidationIssue[] {
  try {
    fn()
  } catch (err) {
    const e = err as Error & { code?: string, errors?: ValidationIssue[] }
    assert.equal(e.code, 'FST_POOL_VALIDATE', `expected FST_POOL_VALIDATE, got ${e.code}: ${e.message}`)
    assert.ok(Array.isArray(e.errors))
    for (const issue of e.errors) assert.ok(e.message.includes(`${issue.path}: ${issue.message}`), 'the message lists every issue')
    return e.errors
  }
  return assert.fail('no error was thrown')
}

/** Assert that exactly these (path, message pattern) pairs were reported, in any order. */
function assertIssues (issues: ValidationIssue[], expected: Array<[string, RegExp]>): void {
  const text = issues.map(i => `${i.path}: ${i.message}`).join('\n')
  for (const [path, message] of expected) {
    assert.ok(issues.some(i => i.path === path && message.test(i.message)), `missing ${path}: ${message}\ngot:\n${text}`)
  }
  assert.equal(issues.length, expected.length, `expected ${expected.length} issues, got:\n${text}`)
}

test('one FST_POOL_VALIDATE lists every problem with its field path', () => {
  const servers = [
    { name: 'ok', listen: '127.0.0.1:0' },
    { name: 'bad-port', listen: '127.0.0.1:99999' },
    { name: 'garbage', listen: 'not an address' },
    { name: 'url', listen: ':7001', expose: 'not a url' },
    { name: 'ftp', listen: ':7002', expose: 'ftp://files.example.com' },
    { listen: ':7003' },
    { name: 'ok', listen: ':7004' },
    { name: 'same-bind', listen: '127.0.0.1:7005' },
    { name: 'same-bind-2', listen: '127.0.0.1:7005' },
    { name: 'all', listen: ':7006' },
    { name: 'loopback', listen: '127.0.0.1:7006' },
    { name: 'no-cert', listen: ':7007', tls: { cert: 'missing.crt', key: tlsPath('server.key') } },
    { name: 'not-pem', listen: ':7008', tls: { cert: tlsPath('server.crt'), key: tlsPath('not-pem.txt') } },
    { name: 'mismatch', listen: ':7009', tls: { cert: tlsPath('server.crt'), key: tlsPath('server2.key') } },
    { name: 'no-handler', listen: ':7010', handler: 'admin' },
    { name: 'typo', listen: ':7011', bodylimit: 10 },
    { name: 'managed', listen: ':7012', fastify: { logger: true, https: {}, bodyLimit: 1 } },
    { name: 'timeouts', listen: ':7013', requestTimeout: 1000, headersTimeout: 5000 },
    { name: '', listen: 7014 },
    { name: 'neg', listen: ':7015', bodyLimit: 0, keepAliveTimeout: -1 },
    { name: 'types', listen: 80.5, disabled: 'yes', tls: 'on' }
  ] as unknown as ListenerConfig[]
  const issues = issuesOf(() => validateConfig({ servers, handlers: { default: noop }, baseDir: '/nowhere' }))
  assertIssues(issues, [
    ['servers[1].listen', /port 99999 is out of range/],
    ['servers[2].listen', /"not an address" has no port/],
    ['servers[3].expose', /"not a url" is not an http:\/\/ or https:\/\/ URL/],
    ['servers[4].expose', /"ftp:\/\/files.example.com" is not an http:\/\/ or https:\/\/ URL/],
    ['servers[5].name', /is required/],
    ['servers[6].name', /"ok" is already used by another listener \(127.0.0.1:0\)/],
    ['servers[8].listen', /127.0.0.1:7005 is already used by listener "same-bind"/],
    ['servers[10].listen', /127.0.0.1:7006 overlaps :7006 of listener "all"/],
    ['servers[11].tls.cert', /cert file not found: \/nowhere\/missing.crt/],
    ['servers[12].tls.key', /key file .*not-pem.txt is not PEM/],
    ['servers[13].tls.cert', /certificate or key cannot be used: .*key values mismatch/],
    ['servers[14].handler', /no handler for key "admin" \(known keys: default\)/],
    ['servers[15].bodylimit', /is not a known option/],
    ['servers[16].fastify.logger', /managed by fastify-pool; give the pool a logger/],
    ['servers[16].fastify.https', /managed by fastify-pool; use the listener's tls field/],
    ['servers[16].fastify.bodyLimit', /managed by fastify-pool; use the listener's bodyLimit field/],
    ['servers[17].headersTimeout', /5000 must not exceed requestTimeout \(1000\)/],
    ['servers[18].name', /must not be empty/],
    ['servers[19].bodyLimit', /greater or equal to 1 \(got 0\)/],
    ['servers[19].keepAliveTimeout', /greater or equal to 0 \(got -1\)/],
    ['servers[20].listen', /port 80.5 is not an integer/],
    ['servers[20].disabled', /expected boolean \(got "yes"\)/],
    ['servers[20].tls', /must be an object or false \(got "on"\)/]
  ])
})

test('a listen value gets one message, not a schema message as well', () => {
  const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: true }] as unknown as ListenerConfig[] }))
  assertIssues(issues, [['servers[0].listen', /must be a string/]])
})

test('servers that are not an array, and entries that are not objects', () => {
  assertIssues(issuesOf(() => validateConfig({ servers: 'x' as unknown as ListenerConfig[] })), [['servers', /must be an array/]])
  assertIssues(issuesOf(() => validateConfig({ servers: [null, 3] as unknown as ListenerConfig[] })), [
    ['servers[0]', /must be an object/],
    ['servers[1]', /must be an object/]
  ])
  assertIssues(issuesOf(() => validateConfig({ servers: [{}] as unknown as ListenerConfig[] })), [
    ['servers[0].name', /is required/],
    ['servers[0].listen', /is required/]
  ])
})

test('defaults are checked too, with defaults.* paths', () => {
  const issues = issuesOf(() => validateConfig({
    servers: [{ name: 'a', listen: ':0' }, { name: 'b', listen: ':0' }],
    defaults: { tls: { cert: 'nope.crt', key: tlsPath('server.key') }, bodyLimit: -5, colour: 'red' } as never,
    baseDir: '/x'
  }))
  assertIssues(issues, [
    ['defaults.bodyLimit', /greater or equal to 1/],
    ['defaults.colour', /is not a known option/],
    // Reported once, although both listeners inherit it.
    ['defaults.tls.cert', /cert file not found: \/x\/nope.crt/]
  ])
})

test('a TLS problem is blamed on the listener when the listener set the field', () => {
  const issues = issuesOf(() => validateConfig({
    servers: [
      { name: 'own', listen: ':1', tls: { cert: 'own.crt' } },
      { name: 'inherits', listen: ':2' }
    ],
    defaults: { tls: { cert: tlsPath('server.crt'), key: 'default.key' } },
    baseDir: '/x'
  }))
  assertIssues(issues, [
    ['servers[0].tls.cert', /cert file not found: \/x\/own.crt/],
    ['defaults.tls.key', /key file not found: \/x\/default.key/]
  ])
})

test('TLS on without a certificate or key says which is missing', () => {
  const issues = issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':1', tls: {} }] }))
  assertIssues(issues, [
    ['servers[0].tls.cert', /is required when TLS is on/],
    ['servers[0].tls.key', /is required when TLS is on/]
  ])
})

test('handler keys: a plugin for all accepts any key; a map needs every used key', () => {
  assert.equal(validateConfig({ servers: [{ name: 'a', listen: ':0', handler: 'anything' }], handlers: noop }).length, 1)
  assert.equal(validateConfig({ servers: [{ name: 'a', listen: ':0' }] }).length, 1, 'no handlers and the default key: nothing to check')
  assertIssues(issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':0', handler: 'admin' }] })), [
    ['servers[0].handler', /no handler for key "admin" \(no handlers were given\)/]
  ])
  assertIssues(issuesOf(() => validateConfig({ servers: [{ name: 'a', listen: ':0' }], handlers: { admin: noop } })), [
    ['servers[0].handler', /no handler for key "default" \(known keys: admin\)/]
  ])
})

test('duplicate binds are found across spellings, port 0 never clashes', () => {
  assertIssues(issuesOf(() => validateConfig({
    servers: [
      { name: 'a', listen: '[::1]:8080' },
      { name: 'b', listen: '[0:0:0:0:0:0:0:1]:8080' },
      { name: 'c', listen: 9000 },
      { name: 'd', listen: '0.0.0.0:9000' },
      { name: 'e', listen: 'unix:/tmp/x.sock' },
      { name: 'f', listen: 'unix:x.sock' }
    ],
    baseDir: '/tmp'
  })), [
    ['servers[1].listen', /\[::1\]:8080 is already used by listener "a"/],
    ['servers[3].listen', /0.0.0.0:9000 overlaps :9000 of listener "c"/],
    ['servers[5].listen', /unix:\/tmp\/x.sock is already used by listener "e"/]
  ])
  const many = Array.from({ length: 30 }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0' }))
  assert.equal(validateConfig({ servers: many }).length, 30)
})

test('the normalised config: built-in defaults, derived expose, frozen', () => {
  const [c] = validateConfig({ servers: [{ name: 'a', listen: '127.0.0.1:8080' }] })
  assert.ok(c !== undefined)
  assert.equal(c.bind, '127.0.0.1:8080')
  assert.equal(c.expose, 'http://127.0.0.1:8080')
  assert.equal(c.handler, 'default')
  assert.equal(c.disabled, false)
  assert.equal(c.optional, false)
  assert.equal(c.tls, undefined)
  assert.equal(c.connectionTimeout, BUILTIN_DEFAULTS.connectionTimeout)
  assert.equal(c.keepAliveTimeout, BUILTIN_DEFAULTS.keepAliveTimeout)
  assert.equal(c.requestTimeout, BUILTIN_DEFAULTS.requestTimeout)
  assert.equal(c.headersTimeout, BUILTIN_DEFAULTS.headersTimeout)
  assert.equal(c.bodyLimit, BUILTIN_DEFAULTS.bodyLimit)
  // Every way a client can hold a socket is bounded; the socket inactivity timer is off (as in Fastify), since it costs per I/O.
  assert.ok(c.keepAliveTimeout > 0 && c.requestTimeout > 0 && c.headersTimeout > 0 && c.sendTimeout > 0, 'safe non-zero timeouts')
  assert.equal(c.connectionTimeout, 0)
  assert.equal(c.logLevel, undefined)
  assert.ok(Object.isFrozen(c))
  assert.throws(() => { (c as { name: string }).name = 'b' }, TypeError)
})

test('expose is derived from listen and TLS when absent, kept when given', () => {
  const configs = validateConfig({
    servers: [
      { name: 'v4', listen: '127.0.0.1:8080' },
      { name: 'all', listen: ':8081' },
      { name: 'any4', listen: '0.0.0.0:8082' },
      { name: 'v6', listen: '[::1]:8083' },
      { name: 'host', listen: 'api.example.com:8084' },
      { name: 'tls', listen: '127.0.0.1:8443', tls: { cert: tls('server.crt'), key: tls('server.key') } },
      { name: 'zero', listen: '127.0.0.1:0' },
      { name: 'sock', listen: 'unix:/tmp/a.sock' },
      { name: 'given', listen: ':8085', expose: 'https://api.example.com/v1' }
    ]
  })
  assert.deepEqual(Object.fromEntries(configs.map(c => [c.name, c.expose])), {
    v4: 'http://127.0.0.1:8080',
    all: 'http://localhost:8081',
    any4: 'http://localhost:8082',
    v6: 'http://[::1]:8083',
    host: 'http://api.example.com:8084',
    tls: 'https://127.0.0.1:8443',
    zero: undefined,
    sock: undefined,
    given: 'https://api.example.com/v1'
  })
})

test('defaults are inherited and overridden field by field', () => {
  const configs = validateConfig({
    defaults: {
      tls: { cert: tlsPath('server.crt'), key: tlsPath('server.key'), minVersion: 'TLSv1.3' },
      connectionTimeout: 5000,
      keepAliveTimeout: 4000,
      requestTimeout: 3000,
      headersTimeout: 2000,
      bodyLimit: 1000,
      logLevel: 'warn',
      health: { liveness: '/live' }
    },
    servers: [
      { name: 'inherits', listen: ':0' },
      { name: 'overrides', listen: ':0', tls: { cert: tlsPath('server2.crt'), key: tlsPath('server2.key') }, keepAliveTimeout: 100, bodyLimit: 10, logLevel: 'debug', health: { readiness: '/ready' } },
      { name: 'plain', listen: ':0', tls: false, requestTimeout: 0, health: false },
      { name: 'own-version', listen: ':0', tls: { minVersion: 'TLSv1.2' } }
    ]
  })
  const [inherits, overrides, plain, ownVersion] = configs
  assert.ok(inherits !== undefined && overrides !== undefined && plain !== undefined && ownVersion !== undefined)

  assert.deepEqual(inherits.tls, { cert: tlsPath('server.crt'), key: tlsPath('server.key'), minVersion: 'TLSv1.3' })
  assert.deepEqual([inherits.connectionTimeout, inherits.keepAliveTimeout, inherits.requestTimeout, inherits.headersTimeout], [5000, 4000, 3000, 2000])
  assert.equal(inherits.bodyLimit, 1000)
  assert.equal(inherits.logLevel, 'warn')
  assert.deepEqual(inherits.health, { liveness: '/live', readiness: BUILTIN_DEFAULTS.readiness })

  // Only the fields the listener names change; the rest still comes from defaults.
  assert.deepEqual(overrides.tls, { cert: tlsPath('server2.crt'), key: tlsPath('server2.key'), minVersion: 'TLSv1.3' })
  assert.equal(overrides.keepAliveTimeout, 100)
  assert.equal(overrides.connectionTimeout, 5000)
  assert.equal(overrides.bodyLimit, 10)
  assert.equal(overrides.logLevel, 'debug')
  assert.deepEqual(overrides.health, { liveness: '/live', readiness: '/ready' })
  assert.equal(overrides.expose, undefined, 'port 0: known once running')

  // tls: false opts out of the default TLS; 0 is a value, not "unset".
  assert.equal(plain.tls, undefined)
  assert.equal(plain.requestTimeout, 0)
  assert.deepEqual(plain.health, { liveness: false, readiness: false })

  assert.deepEqual(ownVersion.tls, { cert: tlsPath('server.crt'), key: tlsPath('server.key'), minVersion: 'TLSv1.2' })
})

test('a derived expose uses https when TLS comes from defaults', () => {
  const [c] = validateConfig({ defaults: { tls: { cert: tls('server.crt'), key: tls('server.key') } }, servers: [{ name: 'a', listen: '127.0.0.1:8443' }] })
  assert.equal(c?.expose, 'https://127.0.0.1:8443')
})

test('TLS accepts PEM text, Buffers and paths relative to baseDir', () => {
  const configs = validateConfig({
    baseDir: tlsPath(''),
    servers: [
      { name: 'text', listen: ':0', tls: { cert: tls('server.crt'), key: tls('server.key') } },
      { name: 'buffer', listen: ':0', tls: { cert: Buffer.from(tls('server.crt')), key: Buffer.from(tls('server.key')), ca: [Buffer.from(tls('ca.crt'))] } },
      { name: 'relative', listen: ':0', tls: { cert: 'server.crt', key: 'server.key', ca: 'ca.crt', requestCert: true } }
    ]
  })
  assert.equal(configs.length, 3)
  assertIssues(issuesOf(() => validateConfig({
    baseDir: tlsPath(''),
    servers: [{ name: 'a', listen: ':0', tls: { cert: 'server.crt', key: 'server.key', ca: ['ca.crt', 'nope.crt', 'not-pem.txt'] } }]
  })), [
    ['servers[0].tls.ca[1]', /ca file not found/],
    ['servers[0].tls.ca[2]', /is not PEM/]
  ])
})

test('the caller\'s configuration is not changed', () => {
  const servers: ListenerConfig[] = [{ name: 'a', listen: ':0', tls: { cert: tlsPath('server.crt'), key: tlsPath('server.key') } }]
  const defaults = { bodyLimit: 5, tls: { minVersion: 'TLSv1.3' as const } }
  const before = structuredClone({ servers, defaults })
  const [c] = validateConfig({ servers, defaults })
  assert.deepEqual({ servers, defaults }, before)
  assert.equal(c?.source, servers[0], 'the source is kept for clone()')
})

test('validateConfig builds nothing: no server, no handle, no handler called', () => {
  const resources = process.getActiveResourcesInfo().length
  let called = 0
  const configs = validateConfig({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: 'unix:/tmp/never-made.sock' }],
    handlers: { default: async () => { called++ } }
  })
  assert.equal(configs.length, 2)
  assert.equal(called, 0)
  assert.equal(process.getActiveResourcesInfo().length, resources)
})

test('createPool with bad input throws FST_POOL_VALIDATE and leaves nothing behind', () => {
  const resources = process.getActiveResourcesInfo().length
  let factoryCalls = 0
  let handlerCalls = 0
  const issues = issuesOf(() => createPool({
    servers: [{ name: 'good', listen: '127.0.0.1:0' }, { name: 'bad', listen: 'nope' }],
    handlers: { default: async () => { handlerCalls++ } },
    factory: () => { factoryCalls++; throw new Error('never called') }
  }))
  assertIssues(issues, [['servers[1].listen', /"nope" has no port/]])
  assert.equal(factoryCalls, 0)
  assert.equal(handlerCalls, 0)
  assert.equal(process.getActiveResourcesInfo().length, resources)
})

test('createPool checks its own options in the same error', () => {
  const issues = issuesOf(() => createPool({
    server: [],
    servers: [{ name: 'a', listen: ':0', handler: 'x' }],
    handlers: { x: 'not a plugin' },
    factory: 'nope',
    logger: 'yes'
  } as never))
  assertIssues(issues, [
    ['server', /is not a known option/],
    ['handlers.x', /must be a Fastify plugin function \(got string\)/],
    ['factory', /must be a function/],
    ['logger', /must be a boolean, pino options or a pino logger/]
  ])
  assertIssues(issuesOf(() => createPool({ handlers: [noop] } as never)), [['handlers', /got array/]])
})

test('createPool(non-object) is refused', () => {
  assert.throws(() => createPool('x' as never), { code: 'FST_POOL_INVALID_ARGUMENT' })
  assert.throws(() => createPool(null as never), { code: 'FST_POOL_INVALID_ARGUMENT' })
  assert.equal(createPool().size, 0)
})

test('a typo of a field gets the nearest known name, wherever it is; a word that is no typo gets the list alone', () => {
  const issues = (options: unknown): Map<string, string> => {
    try {
      validateConfig(options as never)
    } catch (err) {
      return new Map((err as { errors: Array<{ path: string, message: string }> }).errors.map(i => [i.path, i.message]))
    }
    return new Map()
  }
  const found = issues({ servers: [{ name: 'a', lisen: ':1', keepaliveTimeout: 3, colour: 'red' }] })
  assert.equal(found.get('servers[0].lisen'), 'is not a known option; did you mean "listen"?')
  // Case is no edit: the camel-case slip is named too.
  assert.equal(found.get('servers[0].keepaliveTimeout'), 'is not a known option; did you mean "keepAliveTimeout"?')
  assert.equal(found.get('servers[0].colour'), 'is not a known option')
  const pool = (() => { try { createPool({ servers: [], handler: {} } as never) } catch (err) { return (err as { errors: Array<{ path: string, message: string }> }).errors } return [] })()
  assert.match(pool.find(i => i.path === 'handler')?.message ?? '', /^is not a known option; did you mean "handlers"\? \(known: servers, defaults, handlers/)
})
