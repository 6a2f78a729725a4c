// The examples run as a user would run them: the command on real ports (port 0
// through their ${...} variables), checked over real sockets, then stopped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { request } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { createPool } from 'fastify-pool'
import { blueGreen, v1, v2 } from '../examples/blue-green/blue-green.ts'
import { BIN, ROOT, TLS, get, logLines, run, tempDir, type Child } from './fixtures/cli.ts'
import { send } from './fixtures/lifecycle.ts'
import { openClient } from './fixtures/websocket.ts'

const EXAMPLES = join(ROOT, 'examples')

/** Start `fastify-pool start` on an example's file; resolves with each listener's URL. */
async function start (t: Parameters<typeof tempDir>[0], file: string, env: Record<string, string>, args: string[] = [], nodeArgs: string[] = []): Promise<{ child: Child, at: Record<string, string> }> {
  const child = run(t, [...nodeArgs, BIN, 'start', '--json', '-c', file, ...args], { env })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  const entry = logLines(child.stdout()).find(l => l.msg === 'pool started')
  const at: Record<string, string> = {}
  for (const l of (entry?.listeners ?? []) as Array<{ name: string, url?: string }>) if (l.url !== undefined) at[l.name] = l.url
  return { child, at }
}

// The TypeScript starter's `npm start` runs the command under `node --import
// tsx`, so that Node 20 imports its .ts route modules too.
for (const [example, nodeArgs] of [['starter', []], ['starter-ts', ['--import', 'tsx']]] as const) {
  test(`${example}: three listeners answer, the admin one on loopback with the pool status, and SIGINT drains`, async (t) => {
    const certs = tempDir(t)
    const env = {
      PUBLIC_LISTEN: '127.0.0.1:0',
      SECURE_LISTEN: '127.0.0.1:0',
      ADMIN_LISTEN: '127.0.0.1:0',
      TLS_CERT: join(certs, 'dev.crt'),
      TLS_KEY: join(certs, 'dev.key')
    }
    // --dev-cert writes the certificate on first run, as `npm start` does.
    const { child, at } = await start(t, join(EXAMPLES, example, 'pool.yaml'), env, ['--dev-cert'], [...nodeArgs])
    const ca = readFileSync(env.TLS_CERT, 'utf8')
    assert.deepEqual(JSON.parse((await get(`${at.public}/`)).body), { hello: 'world' })
    assert.deepEqual(JSON.parse((await get(`${at.secure}/items/2`, { ca })).body), { id: 2, name: 'item 2' })
    const status = JSON.parse((await get(`${at.admin}/pool`)).body) as { listeners: Array<{ name: string, state: string }> }
    assert.deepEqual(status.listeners.map(l => [l.name, l.state]), [['public', 'running'], ['secure', 'running'], ['admin', 'running']])
    assert.equal((await get(`${at.admin}/readyz`)).status, 200)
    assert.equal((await get(`${at.public}/pool`)).status, 404, 'the pool status is not on the public listener')
    child.proc.kill('SIGINT')
    assert.equal((await child.exited).code, 0)
    assert.ok(logLines(child.stdout()).some(l => l.msg === 'pool stopped'))
  })
}

test('starter: its default ports are not common ones, and the admin listener is on loopback', () => {
  const yaml = readFileSync(join(EXAMPLES, 'starter/pool.yaml'), 'utf8')
  const defaults = [...yaml.matchAll(/LISTEN:-([^}]+)\}/g)].map(m => m[1])
  assert.deepEqual(defaults, [':3700', ':3743', '127.0.0.1:3790'])
})

test('starter: pool.yaml points editors at the shipped JSON Schema', () => {
  const first = readFileSync(join(EXAMPLES, 'starter/pool.yaml'), 'utf8').split('\n')[0] ?? ''
  const m = /^# yaml-language-server: \$schema=(.+)$/.exec(first)
  assert.ok(m, first)
  const schema = JSON.parse(readFileSync(join(EXAMPLES, 'starter', m[1] as string), 'utf8')) as { title: string }
  assert.equal(schema.title, 'fastify-pool configuration')
})

test('starter-ts: its pool.yaml is the starter\'s, with the route modules in TypeScript', () => {
  const js = readFileSync(join(EXAMPLES, 'starter/pool.yaml'), 'utf8')
  assert.equal(readFileSync(join(EXAMPLES, 'starter-ts/pool.yaml'), 'utf8'), js.replace(/^( {2}\w+: \.\/routes\/\w+)\.js$/gm, '$1.ts'))
})

// starter-ts's own tests and type check run in scaffold.test.ts, on the project --ts creates from it.
test('starter: its own tests pass', async (t) => {
  // Files, not the folder: Node 20 runs a folder, later versions take arguments as globs.
  const files = readdirSync(join(EXAMPLES, 'starter/test')).filter(f => f.endsWith('.test.js')).map(f => `test/${f}`)
  assert.ok(files.length > 0)
  const child = run(t, ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=tap', ...files], {
    cwd: join(EXAMPLES, 'starter'),
    // Run as a test run of its own, not as a subprocess reporting to this one.
    env: { NODE_TEST_CONTEXT: undefined }
  })
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout() + child.stderr())
  assert.match(child.stdout(), /^# pass [1-9]/m)
  assert.match(child.stdout(), /^# fail 0$/m)
})

const CA = readFileSync(join(TLS, 'ca.crt'), 'utf8')
const FIXTURE_TLS = { TLS_CERT: join(TLS, 'server.crt'), TLS_KEY: join(TLS, 'server.key') }

async function stop (child: Child): Promise<void> {
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 0, child.stderr())
}

// examples/systemd is tested in systemd.test.ts (it needs systemd-socket-activate).
test('every example has a README and a test here', () => {
  const folders = readdirSync(EXAMPLES, { withFileTypes: true }).filter(d => d.isDirectory()).map(d => d.name).sort()
  assert.deepEqual(folders, ['admin-public', 'blue-green', 'environments', 'gateway', 'kubernetes', 'multi-port', 'starter', 'starter-ts', 'systemd', 'websocket'])
  for (const f of folders) assert.ok(existsSync(join(EXAMPLES, f, 'README.md')), `${f}/README.md`)
})

test('multi-port: the same API over HTTP, HTTPS and TLS 1.3 only, the certificate inherited from defaults.tls', async (t) => {
  const { child, at } = await start(t, join(EXAMPLES, 'multi-port/pool.yaml'), {
    HTTP_LISTEN: '127.0.0.1:0', HTTPS_LISTEN: '127.0.0.1:0', STRICT_LISTEN: '127.0.0.1:0', ...FIXTURE_TLS
  })
  assert.deepEqual(JSON.parse((await get(`${at.http}/`)).body), { protocol: 'http', tls: null })
  assert.deepEqual(JSON.parse((await get(`${at.https}/`, { ca: CA })).body), { protocol: 'https', tls: 'TLSv1.3' })
  assert.deepEqual(JSON.parse((await get(`${at['https-strict']}/`, { ca: CA })).body), { protocol: 'https', tls: 'TLSv1.3' })
  // A TLS 1.2 client is refused by the strict listener only.
  const tls12 = (url: string): Promise<number | string> => new Promise((resolve) => {
    const req = httpsRequest(url, { ca: CA, maxVersion: 'TLSv1.2', agent: false, timeout: 5000 }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    req.end()
  })
  assert.equal(await tls12(`${at.https}/`), 200)
  assert.notEqual(await tls12(`${at['https-strict']}/`), 200)
  await stop(child)
})

test('gateway: users, orders and payments each on their own port with their own routes', async (t) => {
  const { child, at } = await start(t, join(EXAMPLES, 'gateway/pool.yaml'), {
    USERS_LISTEN: '127.0.0.1:0', ORDERS_LISTEN: '127.0.0.1:0', PAYMENTS_LISTEN: '127.0.0.1:0'
  })
  assert.deepEqual(Object.keys(at), ['users', 'orders', 'payments'])
  assert.equal(new Set(Object.values(at)).size, 3, 'three ports')
  assert.equal(JSON.parse((await get(`${at.users}/users`)).body).length, 2)
  assert.deepEqual(JSON.parse((await get(`${at.orders}/orders/10`)).body), { id: 10, userId: 1, total: 42, user: { id: 1, name: 'Ada' } })
  // Each port serves its own service only.
  assert.equal((await get(`${at.orders}/users`)).status, 404)
  assert.equal((await get(`${at.users}/orders`)).status, 404)
  const paid = await post(`${at.payments}/payments`, { orderId: 10, amount: 42 })
  assert.equal(paid.status, 201)
  assert.equal(JSON.parse(paid.body).status, 'accepted')
  assert.equal((await post(`${at.payments}/payments`, { orderId: 10, amount: -1 })).status, 400)
  await stop(child)
})

test('environments: the production file names every missing variable; both files start', async (t) => {
  const prod = join(EXAMPLES, 'environments/pool.prod.yaml')
  const invalid = run(t, [BIN, 'validate', '-c', prod], { env: { TLS_CERT: undefined, TLS_KEY: undefined, APP_LISTEN: undefined } })
  assert.equal((await invalid.exited).code, 1)
  const lines = invalid.stderr().trim().split('\n')
  assert.ok(lines.some(l => /pool\.prod\.yaml:\d+:\d+: defaults\.tls\.cert: environment variable TLS_CERT is required: the path of the certificate chain/.test(l)), lines.join('\n'))
  assert.ok(lines.some(l => /defaults\.tls\.key: environment variable TLS_KEY is required/.test(l)))
  assert.ok(lines.some(l => /servers\[0\]\.listen: environment variable APP_LISTEN is required/.test(l)))

  const dev = await start(t, join(EXAMPLES, 'environments/pool.dev.yaml'), { APP_LISTEN: '127.0.0.1:0', ADMIN_LISTEN: '127.0.0.1:0' })
  assert.deepEqual(JSON.parse((await get(`${dev.at.app}/`)).body), { hello: 'world', secure: false })
  assert.ok(logLines(dev.child.stdout()).some(l => l.level === 20 && l.msg === 'configuration loaded'), 'debug logs in development')
  await stop(dev.child)

  const live = await start(t, prod, { APP_LISTEN: '127.0.0.1:0', ADMIN_LISTEN: '127.0.0.1:0', ...FIXTURE_TLS })
  assert.deepEqual(JSON.parse((await get(`${live.at.app}/`, { ca: CA })).body), { hello: 'world', secure: true })
  assert.match(live.at.admin ?? '', /^http:\/\/127\.0\.0\.1:/, 'admin stays on loopback, in plain HTTP')
  assert.equal(JSON.parse((await get(`${live.at.admin}/pool`)).body).status, 'ok')
  assert.equal(logLines(live.child.stdout()).some(l => l.msg === 'listener started'), false, 'warn level: no info logs')
  await stop(live.child)
})

test('blue-green: green starts and is checked, then blue drains its in-flight request and leaves', async (t) => {
  const pool = createPool({ handlers: { v1, v2 }, servers: [{ name: 'blue', listen: '127.0.0.1:0', handler: 'v1' }] })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const blueUrl = pool.load('blue')?.url as string
  const inFlight = get(`${blueUrl}/slow`)
  await new Promise(resolve => setImmediate(resolve))
  const { green, blue } = await blueGreen(pool, 'blue', { name: 'green', listen: '127.0.0.1:0', handler: 'v2' })
  const slow = await inFlight
  assert.equal(slow.status, 200, 'the request in flight on blue completed')
  assert.equal(slow.headers.connection, 'close', 'and its client was told to reconnect')
  assert.equal(blue?.cut, 0)
  assert.deepEqual(JSON.parse((await get(`${green}/`)).body), { version: 2 })
  assert.deepEqual(pool.list('name', 'name'), ['green'])
  await assert.rejects(get(`${blueUrl}/`), { code: 'ECONNREFUSED' })
})

test('blue-green: a green that is not ready is removed and blue keeps serving', async (t) => {
  const pool = createPool({ handlers: { v1, v2 }, servers: [{ name: 'blue', listen: '127.0.0.1:0', handler: 'v1' }] })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  // Green without a readiness route is never confirmed.
  await assert.rejects(blueGreen(pool, 'blue', { name: 'green', listen: '127.0.0.1:0', handler: 'v2', health: false } as never), /green answered 404/)
  assert.deepEqual(pool.list('name', 'name'), ['blue'])
  assert.deepEqual(JSON.parse((await get(`${pool.load('blue')?.url}/`)).body), { version: 1 })
})

test('blue-green: main.ts runs the switch end to end', async (t) => {
  const child = run(t, ['--conditions=source', '--import', 'tsx', join(EXAMPLES, 'blue-green/main.ts')], { env: { BLUE_LISTEN: '127.0.0.1:0', GREEN_LISTEN: '127.0.0.1:0' } })
  const { code } = await child.exited
  assert.equal(code, 0, child.stderr())
  assert.match(child.stdout(), /green serves http:\/\/127\.0\.0\.1:\d+; blue drained in \d+ ms \(0 request\(s\) cut\)/)
})

test('admin-public: the public listener serves the API only; health and status are on the loopback admin listener', async (t) => {
  const { child, at } = await start(t, join(EXAMPLES, 'admin-public/pool.yaml'), { PUBLIC_LISTEN: '127.0.0.1:0', ADMIN_LISTEN: '127.0.0.1:0' })
  assert.deepEqual(JSON.parse((await get(`${at.public}/`)).body), { hello: 'world' })
  for (const path of ['/healthz', '/readyz', '/live', '/ready', '/pool', '/listeners']) {
    assert.equal((await get(`${at.public}${path}`)).status, 404, `public ${path}`)
  }
  assert.equal((await get(`${at.admin}/live`)).status, 200)
  assert.equal((await get(`${at.admin}/ready`)).status, 200)
  const listeners = JSON.parse((await get(`${at.admin}/listeners`)).body) as Array<{ name: string, state: string }>
  assert.deepEqual(listeners.map(l => [l.name, l.state]), [['public', 'running'], ['admin', 'running']])
  const yaml = readFileSync(join(EXAMPLES, 'admin-public/pool.yaml'), 'utf8')
  assert.match(yaml, /ADMIN_LISTEN:-127\.0\.0\.1:\d+\}/, 'the admin default is loopback')
  await stop(child)
})

function post (url: string, body: unknown): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => { text += c }).on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

test('websocket: a chat client stays connected through a restart of its listener; new clients reach the new code; SIGTERM says 1001', async (t) => {
  const { child, at } = await start(t, join(EXAMPLES, 'websocket/pool.yaml'), { CHAT_LISTEN: '127.0.0.1:0', ADMIN_LISTEN: '127.0.0.1:0' })
  const url = `${at.chat!.replace(/^http/, 'ws')}/chat`
  const old = await openClient(url)
  assert.equal(old.generation, 1)
  const restarted = await send(`${at.admin}/pool/restart?name=chat`, { method: 'POST' })
  assert.equal(restarted.status, 200, restarted.body)
  assert.equal(await old.echo('still here'), 1, 'the old client talks to the generation that accepted it')
  const fresh = await openClient(url)
  assert.equal(fresh.generation, 2)
  child.proc.kill('SIGTERM')
  assert.deepEqual([(await old.closed).code, (await fresh.closed).code], [1001, 1001])
  assert.equal((await child.exited).code, 0)
})
