// The fastify-pool command end to end: child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { createDevCertificate } from 'fastify-pool-cli'
import { BIN, TLS, get, logLines, run, tempDir, type Child } from './fixtures/cli.ts'

const CA = readFileSync(join(TLS, 'ca.crt'), 'utf8')
const VERSION = (JSON.parse(readFileSync(new URL('../packages/fastify-pool-cli/package.json', import.meta.url), 'utf8')) as { version: string }).version

const ROUTES = `
export default async function (app) {
  app.get('/', async () => 'public')
  // Holds the request for ?ms= milliseconds: an in-flight request for drain tests.
  app.get('/slow', async (request) => {
    await new Promise(resolve => setTimeout(resolve, Number(request.query.ms ?? 1000)))
    return 'slow done'
  })
  app.get('/crash', async () => {
    setImmediate(() => { throw new Error('boom from a handler') })
    return 'crashing'
  })
}
`
const ADMIN = 'export default async function (app) { app.get(\'/\', async () => \'admin\') }\n'
const ADMIN2 = 'export default async function (app) { app.get(\'/\', async () => \'admin v2\') }\n'

/** A project folder with route modules and a pool.yaml. */
function project (t: Parameters<typeof tempDir>[0], yaml: string): string {
  const dir = tempDir(t, 'fastify-pool-cli-')
  mkdirSync(join(dir, 'routes'))
  writeFileSync(join(dir, 'routes/public.js'), ROUTES)
  writeFileSync(join(dir, 'routes/admin.js'), ADMIN)
  writeFileSync(join(dir, 'routes/admin2.js'), ADMIN2)
  writeFileSync(join(dir, 'pool.yaml'), yaml)
  return dir
}

const BASIC = `
defaults:
  stopTimeout: \${STOP_TIMEOUT:-10000}
handlers:
  public: ./routes/public.js
  admin: ./routes/admin.js
servers:
  - name: public
    listen: \${PUBLIC_LISTEN:-127.0.0.1:0}
    handler: public
  - name: secure
    listen: 127.0.0.1:0
    handler: public
    tls:
      cert: ${join(TLS, 'server.crt')}
      key: ${join(TLS, 'server.key')}
  - name: admin
    listen: 127.0.0.1:0
    handler: admin
`

/** The URLs of the listeners, from a log entry that lists them ('pool started', 'configuration reloaded'). */
function urls (entry: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const l of (entry?.listeners ?? []) as Array<{ name: string, url?: string }>) if (l.url !== undefined) out[l.name] = l.url
  return out
}

const entry = (child: Child, msg: string): Record<string, unknown> | undefined => logLines(child.stdout()).findLast(l => l.msg === msg)

async function startPool (t: Parameters<typeof tempDir>[0], dir: string, env: Record<string, string> = {}): Promise<{ child: Child, at: Record<string, string> }> {
  const child = run(t, [BIN, 'start', '--json'], { cwd: dir, env })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  return { child, at: urls(entry(child, 'pool started')) }
}

test('--version and --help', async (t) => {
  const version = run(t, [BIN, '--version'])
  assert.equal((await version.exited).code, 0)
  assert.equal(version.stdout().trim(), VERSION)
  const help = run(t, [BIN, '--help'])
  assert.equal((await help.exited).code, 0)
  assert.match(help.stdout(), /Usage: fastify-pool <command>/)
  assert.match(help.stdout(), /validate/)
  const none = run(t, [BIN])
  assert.equal((await none.exited).code, 2, 'no command is a usage error')
  assert.match(none.stderr(), /Usage:/)
})

test('unknown commands, options and values are usage errors (exit 2)', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['--frob'], /unknown option "--frob"/],
    [['start', '--frob'], /start: unknown option "--frob"/],
    [['validate', '--pretty'], /validate: unknown option "--pretty"/],
    [['start', '-c'], /option -c, --config <value> needs a value/],
    [['start', 'a.yaml', 'b.yaml'], /one configuration file at most/],
    [['start', 'a.yaml', '-c', 'b.yaml'], /the file is given twice/],
    [['start', '--pretty', '--json'], /cannot be used together/]
  ]
  await Promise.all(cases.map(async ([args, message]) => {
    const child = run(t, [BIN, ...args])
    assert.equal((await child.exited).code, 2, args.join(' '))
    assert.match(child.stderr(), message)
    assert.match(child.stderr(), /fastify-pool --help/)
  }))
})

test('validate accepts a good file', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /pool\.yaml: valid \(3 listeners: public, secure, admin\)/)
})

test('validate reports every problem of a bad file with its path, and exits 1', async (t) => {
  const dir = project(t, `
handlers:
  public: ./routes/public.js
  gone: ./routes/missing.js
servers:
  - name: public
    listen: \${NOT_SET_ANYWHERE_42}
    handler: public
  - name: secure
    listen: 127.0.0.1:70000
    handler: nope
    tls:
      cert: ./missing.crt
      key: ./missing.key
  - name: public
    listen: 127.0.0.1:0
    colour: blue
`)
  const child = run(t, [BIN, 'validate', '-c', join(dir, 'pool.yaml')], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  const lines = child.stderr().trim().split('\n')
  const expected = [
    /^pool\.yaml: servers\[0\]\.listen: environment variable NOT_SET_ANYWHERE_42 is not set/,
    /^pool\.yaml: handlers\.gone: module not found: .*routes\/missing\.js$/,
    /^pool\.yaml: servers\[1\]\.listen: port 70000 is out of range/,
    /^pool\.yaml: servers\[1\]\.handler: no handler for key "nope"/,
    /^pool\.yaml: servers\[1\]\.tls\.cert: cert file not found: .*missing\.crt$/,
    /^pool\.yaml: servers\[1\]\.tls\.key: key file not found: .*missing\.key$/,
    /^pool\.yaml: servers\[2\]\.colour: is not a known option$/,
    /^pool\.yaml: servers\[2\]\.name: "public" is already used/,
    /^pool\.yaml: servers\[2\]\.handler: no handler for key "default"/
  ]
  for (const re of expected) assert.ok(lines.some(l => re.test(l)), `missing ${re} in:\n${lines.join('\n')}`)
  assert.match(lines.at(-1) ?? '', /^pool\.yaml: 9 problems$/)
})

test('validate reports a YAML syntax error with its line and column', async (t) => {
  const dir = project(t, 'servers:\n  - name: a\n    listen: [1\n  - name: b\n')
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /^pool\.yaml:4:3: YAML syntax error: /m)
})

test('validate without a file says which file is missing', async (t) => {
  const dir = tempDir(t)
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /pool\.yaml: file not found/)
})

test('start serves every listener, prints the table, and drains an in-flight request on SIGTERM (exit 0)', async (t) => {
  const dir = project(t, BASIC)
  const { child, at } = await startPool(t, dir)
  assert.deepEqual(Object.keys(at), ['public', 'secure', 'admin'])
  assert.equal((await get(`${at.public}/`)).body, 'public')
  assert.equal((await get(`${at.secure}/`, { ca: CA })).body, 'public')
  assert.equal((await get(`${at.admin}/`)).body, 'admin')
  // With --json every line on stdout and stderr is a JSON log entry (no table).
  assert.ok(child.stdout().trim().split('\n').every(l => l.startsWith('{')), 'stdout is JSON lines')
  assert.ok(child.stderr().trim().split('\n').every(l => l === '' || l.startsWith('{')), `stderr is JSON lines: ${child.stderr()}`)

  const slow = get(`${at.public}/slow?ms=1500`)
  await child.waitFor(out => /"url":"\/slow\?ms=1500"/.test(out))
  child.proc.kill('SIGTERM')
  const reply = await slow
  assert.equal(reply.status, 200)
  assert.equal(reply.body, 'slow done')
  const { code } = await child.exited
  assert.equal(code, 0)
  const msgs = logLines(child.stdout()).map(l => l.msg)
  assert.ok(msgs.includes('SIGTERM: draining the pool'))
  assert.ok(msgs.includes('pool stopped'))
})

test('a second signal exits at once without waiting for the drain', async (t) => {
  const dir = project(t, BASIC)
  const { child, at } = await startPool(t, dir, { STOP_TIMEOUT: '60000' })
  const slow = get(`${at.public}/slow?ms=60000`).catch((err: Error) => err)
  await child.waitFor(out => /"url":"\/slow\?ms=60000"/.test(out))
  child.proc.kill('SIGINT')
  await child.waitFor(out => /SIGINT: draining the pool/.test(out))
  child.proc.kill('SIGINT')
  const { code } = await child.exited
  assert.equal(code, 1)
  assert.match(child.stdout(), /second SIGINT: exiting now/)
  assert.ok((await slow) instanceof Error, 'the held request was cut')
})

test('an uncaught error drains the pool and exits non-zero', async (t) => {
  const dir = project(t, BASIC)
  const { child, at } = await startPool(t, dir)
  assert.equal((await get(`${at.public}/crash`)).body, 'crashing')
  const { code } = await child.exited
  assert.equal(code, 1)
  const lines = logLines(child.stdout())
  const fatal = lines.find(l => l.msg === 'uncaught error: draining the pool, then exiting')
  assert.match(String((fatal?.err as { message?: string } | undefined)?.message), /boom from a handler/)
  assert.ok(lines.some(l => l.msg === 'pool stopped'))
})

test('start fails with exit 1 and names the listener when its port is taken', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise(resolve => blocker.close(resolve)))
  const port = (blocker.address() as { port: number }).port
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'start', '--json'], { cwd: dir, env: { PUBLIC_LISTEN: `127.0.0.1:${port}` } })
  const { code } = await child.exited
  assert.equal(code, 1)
  const line = child.stderr().split('\n').find(l => l.includes('listener "public"')) ?? ''
  assert.match(line, new RegExp(`listener "public" \\(127\\.0\\.0\\.1:${port}\\): EADDRINUSE: address already in use`))
  assert.equal(line.split(String(port)).length - 1, 1, `the address is said once: ${line}`)
  assert.doesNotMatch(child.stdout() + child.stderr(), /\n\s+at /, 'no stack trace without --verbose')
  // --verbose shows where it came from.
  const verbose = run(t, [BIN, 'start', '--json', '--verbose'], { cwd: dir, env: { PUBLIC_LISTEN: `127.0.0.1:${port}` } })
  assert.equal((await verbose.exited).code, 1)
  assert.match(verbose.stdout(), /"stack"/)
})

test('SIGTERM with shutdownDelay: readiness answers 503 at once while / still answers on new connections, then the drain, exit 0', async (t) => {
  const dir = project(t, BASIC.replace('defaults:\n', 'defaults:\n  shutdownDelay: 1500\n'))
  const { child, at } = await startPool(t, dir)
  assert.equal((await get(`${at.public}/readyz`)).status, 200)
  const began = Date.now()
  child.proc.kill('SIGTERM')
  await child.waitFor(out => /SIGTERM: draining the pool/.test(out))
  const ready = await get(`${at.public}/readyz`)
  assert.equal(ready.status, 503)
  assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
  assert.equal((await get(`${at.public}/`)).body, 'public', 'a new connection is still served during the delay')
  assert.equal((await get(`${at.admin}/`)).body, 'admin')
  const { code } = await child.exited
  assert.equal(code, 0)
  const took = Date.now() - began
  assert.ok(took >= 1400 && took < 10_000, `exited ${took} ms after SIGTERM (delay 1500, stopTimeout 10000)`)
})

test('the file can be given as an argument: fastify-pool validate pool.yaml', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'validate', 'pool.yaml'], { cwd: dir })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /pool\.yaml: valid \(\d+ listeners/)
})

test('SIGTERM while the file is still loading: exit 143, nothing bound', async (t) => {
  const dir = tempDir(t, 'fastify-pool-cli-')
  // A handler module whose loading takes a while, and says when it began.
  writeFileSync(join(dir, 'slow.mjs'), "process.stderr.write('loading\\n')\nawait new Promise(resolve => setTimeout(resolve, 1500))\nexport default async function (app) { app.get('/', async () => 'hi') }\n")
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  const port = (blocker.address() as { port: number }).port
  await new Promise(resolve => blocker.close(resolve))
  writeFileSync(join(dir, 'pool.yaml'), `handlers:\n  default: ./slow.mjs\nservers:\n  - { name: a, listen: "127.0.0.1:${port}" }\n`)
  const child = run(t, [BIN, 'start', '--json', 'pool.yaml'], { cwd: dir })
  await child.waitFor(out => out.includes('loading'))
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 143, child.stdout() + child.stderr())
  assert.match(child.stdout(), /SIGTERM before the pool started/)
  assert.doesNotMatch(child.stdout(), /"msg":"pool started"/)
  const probe = createServer()
  probe.listen(port, '127.0.0.1')
  await once(probe, 'listening')
  await new Promise(resolve => probe.close(resolve))
})

test('start refuses an invalid file and starts nothing', async (t) => {
  const dir = project(t, 'servers:\n  - name: a\n    listen: nowhere\n')
  const child = run(t, [BIN, 'start'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /pool\.yaml: servers\[0\]\.listen: /)
  assert.match(child.stderr(), /nothing was started/)
})

test('SIGHUP applies an edited file in place; a broken one is rejected and the pool keeps serving', async (t) => {
  const dir = project(t, BASIC)
  const { child, at } = await startPool(t, dir)

  // Edit: the admin listener gets a new handler module, a listener is added, the secure one removed.
  writeFileSync(join(dir, 'pool.yaml'), `
handlers:
  public: ./routes/public.js
  admin: ./routes/admin2.js
servers:
  - name: public
    listen: 127.0.0.1:0
    handler: public
  - name: admin
    listen: 127.0.0.1:0
    handler: admin
  - name: extra
    listen: 127.0.0.1:0
    handler: public
`)
  child.proc.kill('SIGHUP')
  await child.waitFor(out => /"msg":"configuration reloaded"/.test(out))
  const report = entry(child, 'configuration reloaded')
  assert.deepEqual(report?.unchanged, ['public'])
  assert.deepEqual(report?.added, ['extra'])
  assert.deepEqual(report?.removed, ['secure'])
  assert.deepEqual(report?.changed, ['admin'])
  const now = urls(report)
  assert.equal(now.public, at.public, 'the unchanged listener kept its socket')
  assert.equal((await get(`${now.public}/`)).body, 'public')
  assert.equal((await get(`${now.extra}/`)).body, 'public')
  assert.equal((await get(`${now.admin}/`)).body, 'admin v2')
  await assert.rejects(get(`${at.secure}/`, { ca: CA }), { code: 'ECONNREFUSED' })

  // A broken file: reported, nothing changes.
  writeFileSync(join(dir, 'pool.yaml'), 'servers:\n  - name: public\n    listen: [oops\n')
  child.proc.kill('SIGHUP')
  await child.waitFor(out => /reload rejected/.test(out))
  const rejected = logLines(child.stdout()).find(l => typeof l.msg === 'string' && l.msg.startsWith('reload rejected'))
  assert.match(String((rejected?.problems as string[])[0]), /^pool\.yaml:\d+:\d+: YAML syntax error/)
  assert.equal((await get(`${now.public}/`)).body, 'public')
  assert.equal((await get(`${now.extra}/`)).body, 'public')

  child.proc.kill('SIGTERM')
  const ex = await child.exited
  assert.equal(ex.code, 0, JSON.stringify(ex) + child.stdout() + child.stderr())
})

test('--pretty prints readable logs and the table of listeners', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'start', '--pretty'], { cwd: dir })
  // Two pipes: what the child wrote to each arrives here in no set order.
  await child.waitFor(out => /pool started/.test(out) && /^admin\s.*running$/m.test(child.stderr()))
  assert.match(child.stdout(), /INFO.*listener started/)
  // The table for people goes to stderr.
  assert.match(child.stderr(), /^NAME\s+BIND\s+URL\s+HANDLER\s+STATE$/m)
  assert.match(child.stderr(), /^public\s+127\.0\.0\.1:0\s+http:\/\/127\.0\.0\.1:\d+\s+public\s+running$/m)
  assert.doesNotMatch(child.stdout(), /^\{"level"/m)
  child.proc.kill('SIGTERM')
  const ex = await child.exited
  assert.equal(ex.code, 0, JSON.stringify(ex) + child.stdout() + child.stderr())
})

test('--dev-cert writes a self-signed certificate where the TLS files are missing, and never overwrites one', async (t) => {
  const dir = project(t, `
handlers:
  public: ./routes/public.js
servers:
  - name: secure
    listen: 127.0.0.1:0
    handler: public
    tls:
      cert: ./certs/dev.crt
      key: ./certs/dev.key
`)
  const first = run(t, [BIN, 'start', '--json', '--dev-cert'], { cwd: dir })
  await first.waitFor(out => /"msg":"pool started"/.test(out))
  assert.match(first.stdout(), /wrote a self-signed development certificate/)
  const cert = readFileSync(join(dir, 'certs/dev.crt'), 'utf8')
  const x509 = new X509Certificate(cert)
  assert.equal(x509.checkHost('localhost'), 'localhost')
  assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1')
  assert.equal(statSync(join(dir, 'certs/dev.key')).mode & 0o077, 0, 'the key is private to its owner')
  const at = urls(entry(first, 'pool started'))
  assert.equal((await get(`${at.secure}/`, { ca: cert })).body, 'public')
  first.proc.kill('SIGTERM')
  assert.equal((await first.exited).code, 0)

  const second = run(t, [BIN, 'start', '--json', '--dev-cert'], { cwd: dir })
  await second.waitFor(out => /"msg":"pool started"/.test(out))
  assert.doesNotMatch(second.stdout(), /wrote a self-signed/)
  assert.equal(readFileSync(join(dir, 'certs/dev.crt'), 'utf8'), cert, 'the existing certificate is kept')
  second.proc.kill('SIGTERM')
  assert.equal((await second.exited).code, 0)
})

test('createDevCertificate() makes a valid certificate for the hosts asked', async () => {
  const { cert, key } = await createDevCertificate({ hosts: ['example.test', '10.1.2.3', 'fe80::1'], days: 2 })
  const x509 = new X509Certificate(cert)
  assert.equal(x509.checkHost('example.test'), 'example.test')
  assert.equal(x509.checkHost('localhost'), undefined)
  assert.equal(x509.checkIP('10.1.2.3'), '10.1.2.3')
  assert.equal(x509.checkIP('fe80::1'), 'fe80::1')
  assert.ok(x509.verify(createPublicKey(key)))
  const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000
  assert.ok(days > 2 && days < 2.1, `valid for ${days} days`)
  assert.equal(x509.ca, false)
})

test('createDevCertificate() gives a certificate that parses, every time', async () => {
  // The first implementation encoded DER by hand and failed about once in 128 runs.
  for (let i = 0; i < 50; i++) {
    const { cert, key } = await createDevCertificate()
    assert.ok(new X509Certificate(cert).checkPrivateKey(createPrivateKey(key)))
  }
})
