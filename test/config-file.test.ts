// Loading pool configuration files: formats, environment interpolation,
// handler modules, paths relative to the file, and problems reported all at once.
/* eslint-disable no-template-curly-in-string -- ${VAR} expressions are the subject of these tests */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPoolFromFile, interpolate, loadConfigFile, type FileIssue } from 'fastify-pool-cli'
import { fileFieldIssues } from 'fastify-pool/config'
import { poolJsonSchemaText } from '../packages/fastify-pool-cli/src/json-schema.ts'
import { ROOT, TLS, get, tempDir } from './fixtures/cli.ts'

const ROUTE = (word: string): string => `export default async function (app) { app.get('/', async () => '${word}') }\n`

interface Problem { code: string, file: string, errors: FileIssue[], message: string }

async function problems (file: string, env: Record<string, string> = {}): Promise<Problem> {
  try {
    await loadConfigFile(file, { env })
  } catch (err) {
    return err as Problem
  }
  assert.fail('the file was accepted')
}

function folder (t: Parameters<typeof tempDir>[0], files: Record<string, string>): string {
  const dir = tempDir(t, 'fastify-pool-config-')
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return dir
}

test('YAML, JSON and JS modules load to the same options', async (t) => {
  const config = { handlers: { main: './routes/main.js' }, defaults: { stopTimeout: 500 }, servers: [{ name: 'a', listen: '127.0.0.1:0', handler: 'main' }] }
  const dir = folder(t, {
    'routes/main.js': ROUTE('main'),
    'pool.yaml': 'handlers:\n  main: ./routes/main.js\ndefaults:\n  stopTimeout: 500\nservers:\n  - name: a\n    listen: 127.0.0.1:0\n    handler: main\n',
    'pool.json': JSON.stringify(config),
    'pool.mjs': `export default ${JSON.stringify(config)}\n`,
    'pool.cjs': `module.exports = ${JSON.stringify(config)}\n`
  })
  for (const name of ['pool.yaml', 'pool.json', 'pool.mjs', 'pool.cjs']) {
    const loaded = await loadConfigFile(join(dir, name))
    assert.equal(loaded.file, join(dir, name))
    assert.deepEqual(loaded.options.servers.map(s => s.source), config.servers, name)
    assert.deepEqual(loaded.options.defaults, config.defaults, name)
    assert.equal(loaded.options.baseDir, dir)
    assert.equal(typeof loaded.options.handlers?.main, 'function')
    assert.equal(loaded.modules.main, join(dir, 'routes/main.js'))
  }
})

test('a JS config may give handler functions directly', async (t) => {
  const dir = folder(t, {
    'pool.mjs': 'export default { handlers: { main: async (app) => { app.get(\'/\', async () => \'inline\') } }, servers: [{ name: \'a\', listen: \'127.0.0.1:0\', handler: \'main\' }] }\n'
  })
  const { pool } = await createPoolFromFile(join(dir, 'pool.mjs'))
  assert.equal((await pool.inject('a', '/')).body, 'inline')
})

test('${VAR} interpolation: defaults, required variables, $$, and numbers and booleans from whole expressions', async (t) => {
  const dir = folder(t, {
    'routes/main.js': ROUTE('main'),
    'pool.yaml': [
      'handlers:',
      '  default: ./routes/main.js',
      'defaults:',
      '  stopTimeout: ${STOP:-1500}',
      'servers:',
      '  - name: ${NAME}',
      '    listen: ${HOST:-127.0.0.1}:${PORT-0}',
      '    expose: https://${DOMAIN:-example.com}/$${literal}',
      '    disabled: ${OFF:-false}',
      '    bodyLimit: ${LIMIT}'
    ].join('\n')
  })
  const { options } = await loadConfigFile(join(dir, 'pool.yaml'), { env: { NAME: 'api', LIMIT: '2048', HOST: '' } })
  const server = options.servers[0]
  assert.equal(server?.name, 'api')
  assert.equal(server?.listen, '127.0.0.1:0')
  assert.equal(options.defaults.stopTimeout, 1500)
  assert.equal(server?.disabled, false)
  assert.equal(server?.bodyLimit, 2048)
  assert.equal(server?.expose, 'https://example.com/${literal}')
})

test('interpolate(): `:-` replaces an unset or empty value, `-` only an unset one', () => {
  const issues: Array<{ path: string, message: string }> = []
  const { value, whole } = interpolate({ a: '${E:-x}', b: '${E-x}', c: '${U-x}', d: ['${U:-}', 7, true, null], e: 'no $ here $$ $5' }, { E: '' }, issues)
  assert.deepEqual(value, { a: 'x', b: '', c: 'x', d: ['', 7, true, null], e: 'no $ here $ $5' })
  assert.deepEqual(whole, [['a'], ['b'], ['c'], ['d', 0]])
  assert.deepEqual(issues, [])
})

test('unset variables and bad expressions are problems that name their field', async (t) => {
  const dir = folder(t, {
    'pool.yaml': [
      'servers:',
      '  - name: a',
      '    listen: ${MISSING_PORT}',
      '  - name: b',
      '    listen: ${NEEDED:?set it to host:port}',
      '  - name: c',
      '    listen: ${not valid}'
    ].join('\n')
  })
  const err = await problems(join(dir, 'pool.yaml'))
  assert.equal(err.code, 'FST_POOL_VALIDATE')
  assert.deepEqual(err.errors.map(e => [e.path, e.message]), [
    ['servers[0].listen', 'environment variable MISSING_PORT is not set (write ${MISSING_PORT:-default} to give a default)'],
    ['servers[1].listen', 'environment variable NEEDED is required: set it to host:port'],
    ['servers[2].listen', '"${not valid}" is not a valid expression; expected ${NAME}, ${NAME:-default} or ${NAME:?message}']
  ])
  assert.equal(err.errors[0]?.file, join(dir, 'pool.yaml'))
})

test('relative TLS paths resolve against the file, not the working directory', async (t) => {
  const dir = folder(t, {
    'certs/server.crt': readFileSync(join(TLS, 'server.crt'), 'utf8'),
    'certs/server.key': readFileSync(join(TLS, 'server.key'), 'utf8'),
    'conf/pool.yaml': 'servers:\n  - name: s\n    listen: 127.0.0.1:0\n    tls:\n      cert: ../certs/server.crt\n      key: ../certs/server.key\n  - name: broken\n    listen: 127.0.0.1:0\n    tls:\n      cert: ./nope.crt\n      key: ../certs/server.key\n'
  })
  const err = await problems(join(dir, 'conf/pool.yaml'))
  assert.deepEqual(err.errors.map(e => e.path), ['servers[1].tls.cert'])
  assert.equal(err.errors[0]?.message, `cert file not found: ${join(dir, 'conf/nope.crt')}`)
  assert.match(err.message, /conf\/pool\.yaml: servers\[1\]\.tls\.cert: cert file not found/)

  writeFileSync(join(dir, 'conf/pool.yaml'), 'servers:\n  - name: s\n    listen: 127.0.0.1:0\n    tls:\n      cert: ../certs/server.crt\n      key: ../certs/server.key\n')
  const { pool } = await createPoolFromFile(join(dir, 'conf/pool.yaml'), { cwd: ROOT })
  t.after(() => pool.stop())
  await pool.start()
  const reply = await get(`${pool.load('s')?.url}/healthz`, { ca: readFileSync(join(TLS, 'ca.crt'), 'utf8') })
  assert.equal(reply.status, 200)
})

test('handler modules: missing, without a default export, or failing to import', async (t) => {
  const dir = folder(t, {
    'routes/named.js': 'export function plugin () {}\n',
    'routes/broken.js': 'throw new Error(\'broken at import\')\n',
    'routes/object.js': 'export default { not: \'a plugin\' }\n',
    'pool.yaml': [
      'handlers:',
      '  missing: ./routes/missing.js',
      '  named: ./routes/named.js',
      '  broken: ./routes/broken.js',
      '  object: ./routes/object.js',
      '  package: no-such-package-anywhere',
      '  empty: ""',
      'servers:',
      '  - name: a',
      '    listen: 127.0.0.1:0',
      '    handler: missing'
    ].join('\n')
  })
  const err = await problems(join(dir, 'pool.yaml'))
  const byPath = Object.fromEntries(err.errors.map(e => [e.path, e.message]))
  assert.deepEqual(Object.keys(byPath).sort(), ['handlers.broken', 'handlers.empty', 'handlers.missing', 'handlers.named', 'handlers.object', 'handlers.package'])
  assert.equal(byPath['handlers.missing'], `module not found: ${join(dir, 'routes/missing.js')}`)
  assert.match(byPath['handlers.named'] ?? '', /must export a Fastify plugin as default \(got no default export\)/)
  assert.match(byPath['handlers.object'] ?? '', /must export a Fastify plugin as default \(got object\)/)
  assert.match(byPath['handlers.broken'] ?? '', /cannot import .*broken\.js: broken at import/)
  assert.match(byPath['handlers.package'] ?? '', /module "no-such-package-anywhere" not found/)
  assert.match(byPath['handlers.empty'] ?? '', /must be a module path/)
})

test('file-level problems: missing file, unknown fields, no servers, wrong extension, syntax errors with line and column', async (t) => {
  const dir = folder(t, {
    'fields.yaml': 'listeners: []\ndefaults: 3\n',
    'pool.toml': 'x = 1\n',
    'list.yaml': '- a\n- b\n',
    'bad.yaml': 'servers:\n  - name: a\n    listen: "unterminated\n',
    'bad.json': '{\n  "servers": [\n    { "name": "a",, }\n  ]\n}\n'
  })
  assert.deepEqual((await problems(join(dir, 'nope.yaml'))).errors.map(e => e.message), ['file not found'])
  assert.deepEqual((await problems(join(dir, 'fields.yaml'))).errors.map(e => `${e.path}: ${e.message}`), [
    'servers: is required: a list of listeners',
    'listeners: is not a known field (expected $schema, defaults, metrics, control, monitor, workers, handlers, servers)',
    'defaults: must be an object (got 3)'
  ])
  assert.match((await problems(join(dir, 'pool.toml'))).errors[0]?.message ?? '', /unsupported file type "\.toml"; expected \.yaml, \.yml, \.json, \.js, \.mjs, \.cjs/)
  assert.match((await problems(join(dir, 'list.yaml'))).errors[0]?.message ?? '', /must contain an object with a "servers" list \(got a list\)/)
  const yaml = await problems(join(dir, 'bad.yaml'))
  assert.ok(Number.isInteger(yaml.errors[0]?.line) && Number.isInteger(yaml.errors[0]?.column), 'line and column')
  assert.match(yaml.errors[0]?.message ?? '', /^YAML syntax error: /)
  assert.match(yaml.message, /bad\.yaml:\d+:\d+: YAML syntax error/)
  const json = await problems(join(dir, 'bad.json'))
  assert.deepEqual([json.errors[0]?.line, json.errors[0]?.column], [3, 19])
  assert.match(json.errors[0]?.message ?? '', /^JSON syntax error: /)
})

test('handler modules see the pool as app.pool, and reload() re-reads the file', async (t) => {
  const dir = folder(t, {
    'routes/main.js': 'export default async function (app) { app.get(\'/\', async () => app.pool.list(\'name\', \'name\')) }\n',
    'pool.yaml': 'handlers:\n  default: ./routes/main.js\nservers:\n  - name: a\n    listen: 127.0.0.1:0\n'
  })
  const running = await createPoolFromFile(join(dir, 'pool.yaml'))
  t.after(() => running.pool.stop())
  await running.pool.start()
  assert.deepEqual(JSON.parse((await get(`${running.pool.load('a')?.url}/`)).body), ['a'])
  writeFileSync(join(dir, 'pool.yaml'), 'handlers:\n  default: ./routes/main.js\nservers:\n  - name: a\n    listen: 127.0.0.1:0\n  - name: b\n    listen: 127.0.0.1:0\n')
  const report = await running.reload()
  assert.deepEqual(report.unchanged, ['a'], 'the same module gives the same handler: a is left alone')
  assert.deepEqual(report.added, ['b'])
  assert.deepEqual(JSON.parse((await get(`${running.pool.load('b')?.url}/`)).body), ['a', 'b'])
  assert.equal(running.loaded.options.servers.length, 2)
})

test('the shipped JSON Schema is generated from the TypeBox schema (run `pnpm --filter fastify-pool-cli schema` when this fails)', () => {
  const committed = readFileSync(join(ROOT, 'packages/fastify-pool-cli/schema/pool.schema.json'), 'utf8')
  assert.equal(committed, poolJsonSchemaText())
  const schema = JSON.parse(committed) as { properties: Record<string, unknown>, required: string[] }
  assert.deepEqual(Object.keys(schema.properties), ['$schema', 'defaults', 'metrics', 'control', 'monitor', 'workers', 'handlers', 'servers'])
  assert.deepEqual(schema.required, ['servers'])
  // Numbers and booleans may be written as ${VAR} expressions.
  assert.match(committed, /"pattern": "\^\\\\\$\\\\\{\[\^}\]\+\\\\}\$"/)
})

test('a file is checked once: its certificate is read once on the way to the socket, once per reload, and again on a restart only once renewed', async (t) => {
  const fs = (await import('node:fs')).default
  const { syncBuiltinESMExports } = await import('node:module')
  const dir = folder(t, {
    'pool.yaml': 'servers:\n  - name: s\n    listen: 127.0.0.1:0\n    tls:\n      cert: ./server.crt\n      key: ./server.key\n',
    'server.crt': readFileSync(join(TLS, 'server.crt'), 'utf8'),
    'server.key': readFileSync(join(TLS, 'server.key'), 'utf8')
  })
  const cert = join(dir, 'server.crt')
  // Count the reads of the certificate file; the reads themselves are real.
  const real = fs.readFileSync
  let reads = 0
  fs.readFileSync = ((...args: Parameters<typeof real>) => {
    if (String(args[0]) === cert) reads++
    return real(...args)
  }) as typeof real
  syncBuiltinESMExports()
  t.after(() => { fs.readFileSync = real; syncBuiltinESMExports() })

  const filePool = await createPoolFromFile(join(dir, 'pool.yaml'))
  const pool = filePool.pool
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  assert.equal(reads, 1, 'loaded, checked, pooled and started: one read')
  const ca = readFileSync(join(TLS, 'ca.crt'), 'utf8')
  assert.equal((await get(`${pool.load('s')?.url ?? ''}/healthz`, { ca })).status, 200)
  await pool.restart()
  assert.equal(reads, 1, 'a restart with the files unchanged reads nothing')
  const report = await filePool.reload()
  assert.deepEqual(report.unchanged, ['s'])
  assert.equal(reads, 2, 'a reload reads the file once (to check it), and the kept listener takes what it read')
  // A renewed certificate (the same here, with a new modification time): the next restart reads it.
  const later = new Date(Date.now() + 5000)
  fs.utimesSync(cert, later, later)
  await pool.restart()
  assert.equal(reads, 3, 'a restart reads a renewed file')
  assert.equal((await get(`${pool.load('s')?.url ?? ''}/healthz`, { ca })).status, 200)
})

test('the top level is checked against PoolFileSchema, in its words; what a section holds is left to its own check', () => {
  const byPath = Object.fromEntries(fileFieldIssues({
    $schema: 3,
    servers: 'a',
    handlers: { ok: './a.js', empty: '', number: 2 },
    defaults: { colour: 'red' },
    metrics: { listener: 3 },
    extra: 1
  }).map(i => [i.path, i.message]))
  assert.deepEqual(byPath, {
    $schema: 'must be a string (got 3)',
    servers: 'must be a list of listeners (got "a")',
    'handlers.empty': 'must be a module path, relative to this file (got "")',
    'handlers.number': 'must be a module path, relative to this file (got 2)',
    extra: 'is not a known field (expected $schema, defaults, metrics, control, monitor, workers, handlers, servers)'
  })
  assert.deepEqual(fileFieldIssues({ servers: [], handlers: [] }).map(i => `${i.path}: ${i.message}`), ['handlers: must be a map of handler keys to module paths (got [])'])
})
