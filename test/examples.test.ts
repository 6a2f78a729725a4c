// The examples run as a user would run them: the command on real ports (port 0
// through their ${...} variables), checked over real sockets, then stopped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, ROOT, get, logLines, run, tempDir, type Child } from './fixtures/cli.ts'

const EXAMPLES = join(ROOT, 'examples')

/** Start `fastify-pool start` on an example's file; resolves with each listener's URL. */
async function start (t: Parameters<typeof tempDir>[0], file: string, env: Record<string, string>, args: string[] = []): Promise<{ child: Child, at: Record<string, string> }> {
  const child = run(t, [BIN, 'start', '--json', '-c', file, ...args], { env })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  const entry = logLines(child.stdout()).find(l => l.msg === 'pool started')
  const at: Record<string, string> = {}
  for (const l of (entry?.listeners ?? []) as Array<{ name: string, url?: string }>) if (l.url !== undefined) at[l.name] = l.url
  return { child, at }
}

test('starter: three listeners answer, the admin one on loopback with the pool status, and SIGINT drains', async (t) => {
  const certs = tempDir(t)
  const env = {
    PUBLIC_LISTEN: '127.0.0.1:0',
    SECURE_LISTEN: '127.0.0.1:0',
    ADMIN_LISTEN: '127.0.0.1:0',
    TLS_CERT: join(certs, 'dev.crt'),
    TLS_KEY: join(certs, 'dev.key')
  }
  // --dev-cert writes the certificate on first run, as `npm start` does.
  const { child, at } = await start(t, join(EXAMPLES, 'starter/pool.yaml'), env, ['--dev-cert'])
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

test('starter: its own tests pass', async (t) => {
  const child = run(t, ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=tap', 'test/'], {
    cwd: join(EXAMPLES, 'starter'),
    // Run as a test run of its own, not as a subprocess reporting to this one.
    env: { NODE_TEST_CONTEXT: undefined }
  })
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout() + child.stderr())
  assert.match(child.stdout(), /^# pass [1-9]/m)
  assert.match(child.stdout(), /^# fail 0$/m)
})
