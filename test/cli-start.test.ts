// `fastify-pool start` end to end: serving, signals, drains and SIGHUP, in child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { BIN, freePort, get, logLines, run, tempDir } from './fixtures/cli.ts'
import { BASIC, CA, entry, project, startPool, urls } from './fixtures/cli-project.ts'

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
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 1)
  assert.match(child.stdout(), /second SIGTERM: exiting now/)
  assert.ok((await slow) instanceof Error, 'the held request was cut')
})

test('one stop that arrives twice at once (a Ctrl-C to the process group that a package manager also passes on) is one stop: the drain finishes, exit 0', async (t) => {
  const dir = project(t, BASIC)
  const { child, at } = await startPool(t, dir, { STOP_TIMEOUT: '60000' })
  const slow = get(`${at.public}/slow?ms=300`)
  await child.waitFor(out => /"url":"\/slow\?ms=300"/.test(out))
  child.proc.kill('SIGINT')
  child.proc.kill('SIGINT')
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout())
  assert.doesNotMatch(child.stdout(), /second SIGINT/)
  assert.equal((await slow).status, 200, 'the request in flight was answered')
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
  // --json: every line of both streams is JSON; the error names the listener, its bind and the cause.
  const lines = [...child.stdout().split('\n'), ...child.stderr().split('\n')].filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
  const failure = lines.find(l => l.listener === 'public' && l.code === 'FST_POOL_START')
  assert.deepEqual({ bind: failure?.bind, cause: failure?.cause }, { bind: `127.0.0.1:${port}`, cause: 'EADDRINUSE' })
  assert.match(String(failure?.message), /^EADDRINUSE: address already in use/)
  assert.doesNotMatch(child.stdout() + child.stderr(), /\n\s+at /, 'no stack trace without --verbose')
  // Without --json, for people: one line that says the address once.
  const text = run(t, [BIN, 'start', '--pretty'], { cwd: dir, env: { PUBLIC_LISTEN: `127.0.0.1:${port}` } })
  assert.equal((await text.exited).code, 1)
  const line = text.stderr().split('\n').find(l => l.includes('listener "public"')) ?? ''
  assert.match(line, new RegExp(`listener "public" \\(127\\.0\\.0\\.1:${port}\\): EADDRINUSE: address already in use`))
  assert.equal(line.split(String(port)).length - 1, 1, `the address is said once: ${line}`)
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

test('SIGTERM while the file is still loading: exit 0, nothing bound', async (t) => {
  const dir = tempDir(t, 'fastify-pool-cli-')
  // A handler module whose loading takes a while, and says when it began.
  writeFileSync(join(dir, 'slow.mjs'), "process.stderr.write('loading\\n')\nawait new Promise(resolve => setTimeout(resolve, 1500))\nexport default async function (app) { app.get('/', async () => 'hi') }\n")
  const port = await freePort()
  writeFileSync(join(dir, 'pool.yaml'), `handlers:\n  default: ./slow.mjs\nservers:\n  - { name: a, listen: "127.0.0.1:${port}" }\n`)
  const child = run(t, [BIN, 'start', '--json', 'pool.yaml'], { cwd: dir })
  await child.waitFor(out => out.includes('loading'))
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout() + child.stderr())
  assert.match(child.stdout(), /SIGTERM before the pool started/)
  assert.doesNotMatch(child.stdout(), /"msg":"pool started"/)
  const probe = createServer()
  probe.listen(port, '127.0.0.1')
  await once(probe, 'listening')
  await new Promise(resolve => probe.close(resolve))
})

test('SIGTERM while the listeners start (a plugin still registering): the start stops there, exit 0, no "pool started", no error', async (t) => {
  const dir = tempDir(t, 'fastify-pool-cli-')
  // A plugin whose registration takes a while, and says when it began.
  writeFileSync(join(dir, 'slow.mjs'), "export default async function (app) { process.stderr.write('registering\\n'); await new Promise(resolve => setTimeout(resolve, 1000)); app.get('/', async () => 'hi') }\n")
  writeFileSync(join(dir, 'pool.yaml'), 'handlers:\n  default: ./slow.mjs\nservers:\n  - { name: a, listen: "127.0.0.1:0" }\nmonitor: true\n')
  const child = run(t, [BIN, 'start', '--json', '--pid-file', join(dir, 'pool.pid'), 'pool.yaml'], { cwd: dir })
  await child.waitFor(out => out.includes('registering'))
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout() + child.stderr())
  assert.match(child.stdout(), /"msg":"SIGTERM: draining the pool"/)
  assert.match(child.stdout(), /"msg":"pool stopped while it was starting: what had started is closed"/)
  assert.doesNotMatch(child.stdout(), /"msg":"pool started"/)
  assert.equal(child.stderr().replace('registering\n', ''), '', 'nothing unexpected on stderr')
  assert.equal(existsSync(join(dir, 'pool.pid')), false, 'no pid file for a pool that never served')
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
