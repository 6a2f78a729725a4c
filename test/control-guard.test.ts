// The control API against what a web page can make a browser send: cross-site
// POSTs without a preflight, DNS rebinding (a foreign Host), and globs built
// to make a regular expression backtrack. Real sockets on 127.0.0.1.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createPool, type ControlOptions, type Pool, type ListenerConfig } from 'fastify-pool'
import { send } from './fixtures/lifecycle.ts'
import { BIN, run } from './fixtures/cli.ts'

const TOKEN = 'a-control-token-of-some-length'
const LONG_NAME = 'public-api-eu-west-1-abc'
const hello = async (app: FastifyInstance): Promise<void> => { app.get('/', async () => 'hello') }

async function started (t: TestContext, control: ControlOptions = { listener: 'admin' }, admin: Partial<ListenerConfig> = {}): Promise<Pool> {
  const p = createPool({
    control,
    servers: [
      { name: LONG_NAME, listen: '127.0.0.1:0' },
      { name: 'admin', listen: '127.0.0.1:0', ...admin }
    ],
    handlers: hello
  })
  t.after(() => p.stop({ timeout: 0 }))
  await p.start()
  return p
}

const adminUrl = (p: Pool): string => p.load('admin')?.url as string
const port = (p: Pool): string => new URL(adminUrl(p)).port

async function post (p: Pool, path: string, headers: Record<string, string>): Promise<{ status: number, body: { error?: string } }> {
  const reply = await send(`${adminUrl(p)}${path}`, { method: 'POST', headers })
  return { status: reply.status, body: JSON.parse(reply.body) }
}

test('a cross-site POST (text/plain, no body, as fetch with mode: no-cors sends it) is refused and stops nothing', async (t) => {
  const p = await started(t)
  const { status, body } = await post(p, `/pool/stop?name=${LONG_NAME}`, { origin: 'http://evil.example', 'content-type': 'text/plain;charset=UTF-8' })
  assert.equal(status, 403)
  assert.match(body.error ?? '', /other sites/)
  assert.equal(p.load(LONG_NAME)?.state, 'running')
  assert.equal((await send(p.load(LONG_NAME)?.url as string)).body, 'hello')
})

test('Origin and Sec-Fetch-Site: another site is refused, loopback pages and tools are not', async (t) => {
  const p = await started(t)
  const restart = (headers: Record<string, string>): Promise<number> => post(p, `/pool/restart?name=${LONG_NAME}`, headers).then(r => r.status)
  assert.equal(await restart({ origin: 'http://evil.example' }), 403)
  assert.equal(await restart({ origin: 'https://127.0.0.1.evil.example' }), 403)
  assert.equal(await restart({ origin: 'null' }), 403, 'a sandboxed page or a file sends Origin: null')
  assert.equal(await restart({ 'sec-fetch-site': 'cross-site' }), 403)
  assert.equal(p.load(LONG_NAME)?.status.generation, 1, 'nothing refused was done')
  assert.equal(await restart({ origin: `http://localhost:${port(p)}` }), 200)
  assert.equal(await restart({ origin: 'http://127.0.0.1:3000', 'sec-fetch-site': 'same-site' }), 200)
  assert.equal(await restart({}), 200, 'curl and the commands send no Origin')
  assert.equal(p.load(LONG_NAME)?.status.generation, 4)
})

test('a state-changing route takes no body or a JSON one: forms, multipart and text are refused with 415', async (t) => {
  const p = await started(t)
  const url = `${adminUrl(p)}/pool/restart?name=${LONG_NAME}`
  for (const [type, body] of [['application/x-www-form-urlencoded', 'a=b'], ['multipart/form-data; boundary=x', '--x--\r\n'], ['text/plain', 'stop']]) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': type as string }, body })
    assert.equal(res.status, 415, type)
    await res.body?.cancel()
  }
  const json = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(json.status, 200)
  await json.body?.cancel()
  assert.equal(p.load(LONG_NAME)?.status.generation, 2)
})

test('DNS rebinding: a request addressed to another host name is refused, GET and POST alike', async (t) => {
  const p = await started(t)
  const get = (host: string): Promise<number> => send(`${adminUrl(p)}/pool`, { headers: { host } }).then(r => r.status)
  assert.equal(await get(`evil.example:${port(p)}`), 403)
  assert.equal(await get('evil.example'), 403)
  assert.equal(await get(`127.0.0.1.nip.example:${port(p)}`), 403)
  assert.equal((await post(p, '/pool/stop', { host: `evil.example:${port(p)}` })).status, 403)
  assert.equal(p.load(LONG_NAME)?.state, 'running')
  for (const host of [`localhost:${port(p)}`, `127.0.0.1:${port(p)}`, `[::1]:${port(p)}`, 'localhost', `app.localhost:${port(p)}`]) {
    assert.equal(await get(host), 200, host)
  }
})

test('with a token none of that applies, and the bearer scheme is case-insensitive', async (t) => {
  const p = await started(t, { listener: 'admin', token: TOKEN })
  const get = (headers: Record<string, string>): Promise<number> => send(`${adminUrl(p)}/pool`, { headers }).then(r => r.status)
  assert.equal(await get({ authorization: `bearer ${TOKEN}`, host: 'pool.internal.example' }), 200)
  assert.equal(await get({ authorization: `BEARER ${TOKEN}` }), 200)
  assert.equal(await get({ authorization: `Bearer ${TOKEN}`, origin: 'http://evil.example' }), 200)
  assert.equal(await get({ authorization: `bearer ${TOKEN}x` }), 401)
  assert.equal(await get({ host: 'localhost' }), 401)
})

test('over a unix socket the Host is not checked (no browser reaches one)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-guard-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const socketPath = join(dir, 'admin.sock')
  await started(t, { listener: 'admin' }, { listen: `unix:${socketPath}` })
  const reply = await send('http://pool.example/pool', { socketPath, headers: { host: 'pool.example' } })
  assert.equal(reply.status, 200)
})

test('globs built to backtrack answer at once, and every listener keeps answering meanwhile', async (t) => {
  const p = await started(t)
  const health = p.load(LONG_NAME)?.url as string
  for (const glob of ['+(*)z', '@(*|*)*(*)z', '*'.repeat(15_000), `${'*a'.repeat(127)}z`]) {
    const began = performance.now()
    const [reply, healthz] = await Promise.all([
      send(`${adminUrl(p)}/pool/restart?name=${encodeURIComponent(glob)}`, { method: 'POST' }),
      send(`${health}/healthz`)
    ])
    const ms = performance.now() - began
    assert.equal(healthz.status, 200)
    assert.ok([400, 404].includes(reply.status), `${glob.slice(0, 20)}…: ${reply.status} ${reply.body.slice(0, 200)}`)
    // Seconds before this fix; a generous bound, for a busy machine.
    assert.ok(ms < 1000, `${glob.slice(0, 20)}… (${glob.length} characters) took ${Math.round(ms)} ms`)
  }
  const long = await send(`${adminUrl(p)}/pool/restart?name=${'*'.repeat(300)}`, { method: 'POST' })
  assert.equal(long.status, 400)
  assert.match(JSON.parse(long.body).error, /300 characters long, and at most 256 are allowed/)
  assert.equal(p.load(LONG_NAME)?.status.generation, 1)
})

test('Pool.filter() refuses a glob past the limits with FST_POOL_GLOB, at once', async (t) => {
  const p = await started(t)
  const began = performance.now()
  assert.throws(() => p.filter('name', 'x'.repeat(1024 * 1024)), { code: 'FST_POOL_GLOB', message: /1048576 characters long, and at most 256/ })
  assert.throws(() => p.filter('name', '{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}'), { code: 'FST_POOL_GLOB', message: /more than 64 alternatives/ })
  assert.ok(performance.now() - began < 1000)
  assert.deepEqual([...p.filter('name', '+(*)z')].map(l => l.name), [], 'extglob syntax is literal')
  assert.deepEqual([...p.filter('name', 'public-{api,web}-*')].map(l => l.name), [LONG_NAME])
  assert.deepEqual([...p.filter('name', '*-[0-9]-*')].map(l => l.name), [LONG_NAME])
})

test('a secret never appears in an error message or a log line, whatever else is wrong with the configuration', async (t) => {
  const secrets = ['short-token', 'tiny', 'x'.repeat(15)]
  const seen: string[] = []
  for (const token of secrets) {
    for (const servers of [[{ name: 'admin', listen: '127.0.0.1:0' }], [{ name: 'admin', listen: '0.0.0.0:0' }], [{ name: 'other', listen: 'nope' }]]) {
      try {
        createPool({ servers, control: { listener: 'admin', token } })
        assert.fail('the configuration was accepted')
      } catch (err) {
        const e = err as Error & { errors?: unknown[] }
        seen.push(e.message, JSON.stringify(e.errors ?? []))
      }
    }
  }
  // The command: validate and start, with the token from the environment and from the file.
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-secret-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  // eslint-disable-next-line no-template-curly-in-string -- a ${VAR} of the pool file
  writeFileSync(join(dir, 'pool.yaml'), 'control:\n  listener: admin\n  token: ${POOL_TOKEN}\nservers:\n  - { name: admin, listen: "0.0.0.0:0", stopTimeout: -1 }\n')
  writeFileSync(join(dir, 'inline.yaml'), 'control:\n  listener: admin\n  token: short-token\nservers:\n  - { name: admin, listen: "127.0.0.1:0" }\n')
  for (const args of [['validate'], ['start', '--json'], ['start'], ['validate', 'inline.yaml'], ['start', '--json', '-c', 'inline.yaml']]) {
    const child = run(t, [BIN, ...args], { cwd: dir, env: { POOL_TOKEN: 'tiny' } })
    const { code } = await child.exited
    assert.notEqual(code, 0, `${args.join(' ')} refused the file`)
    seen.push(child.stdout(), child.stderr())
  }
  assert.ok(seen.some(text => /control\.token/.test(text)), 'the token\'s problem was reported')
  for (const secret of secrets) {
    const leaks = seen.filter(text => text.includes(secret))
    assert.deepEqual(leaks, [], `"${secret}" appears in what was printed or thrown`)
  }
})
