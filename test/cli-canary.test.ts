// `fastify-pool reload --canary`, `restart --canary` and `canary
// promote|abort` against a `fastify-pool start` of the same file: the
// verdict is the exit code and one line. Child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './fixtures/cli.ts'
import { command, poolFile, project, started } from './fixtures/operate.ts'
import { load } from './fixtures/keep-alive-load.ts'

async function urlOf (t: Parameters<typeof command>[0], dir: string, name: string): Promise<string> {
  const ps = await command(t, dir, ['ps', '--json'])
  const listener = (JSON.parse(ps.stdout) as { listeners: Array<{ name: string, url: string }> }).listeners.find(l => l.name === name)
  assert.ok(listener !== undefined, ps.stdout)
  return listener.url
}

/** The operate project where public-a alone serves the module a test changes, started, with load on public-a. */
async function publicAChanges (t: Parameters<typeof command>[0]): Promise<{ dir: string, pool: Awaited<ReturnType<typeof started>>, traffic: ReturnType<typeof load> }> {
  const file = poolFile(await freePort())
    .replace('  public: ./routes/public.js\n', '  public: ./routes/public.js\n  other: ./routes/other.js\n')
    .replace(/(name: (public-b|admin)\n {4}listen: [^\n]+\n {4}handler: )public/g, '$1other')
  const dir = project(t, file, { 'routes/other.js': "export default async function (app) { app.get('/', async () => 'other') }\n" })
  const pool = await started(t, dir)
  const traffic = load(await urlOf(t, dir, 'public-a'))
  t.after(() => traffic.stop())
  return { dir, pool, traffic }
}

test('reload --canary: new code that fails one request in five is rolled back (exit 1, one line with both figures); the old code serves on', async (t) => {
  const { dir, pool, traffic } = await publicAChanges(t)
  // The handler module read afresh by the reload: every fifth request fails.
  writeFileSync(join(dir, 'routes/public.js'), "let n = 0\nexport default async function (app) { app.get('/', async (_r, reply) => ++n % 5 === 0 ? reply.code(500).send('bad') : 'new') }\n")
  const reload = await command(t, dir, ['reload', '--canary', '20'])
  const seen = await traffic.stop()
  assert.equal(reload.code, 1, reload.stderr)
  assert.match(reload.stdout, /changed public-a; moved -; unchanged public-b, admin/)
  assert.match(reload.stdout, /^public-a: canary rolled back on errors: 5xx share .* \(canary generation 2: \d+ requests, [\d.]+ % 5xx, p99 .*; serving generation 1: \d+ requests, 0\.0 % 5xx/m)
  assert.equal(seen.errors, 0)
  assert.equal((await command(t, dir, ['reload', '--canary', '120'])).code, 2, 'a share out of range is a usage error')
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('restart --canary waits for the verdict; canary promote ends it (exit 0), canary abort with none running exits 5', async (t) => {
  const dir = project(t, poolFile(await freePort()))
  const pool = await started(t, dir)
  const traffic = load(await urlOf(t, dir, 'public-a'))
  const restarting = command(t, dir, ['restart', 'public-a', '--canary', '10'])
  t.after(() => traffic.stop())
  // ps shows the canary once it runs (a bounded number of looks).
  let shown = ''
  for (let i = 0; i < 100 && !/canary 2: 10 %/.test(shown); i++) shown = (await command(t, dir, ['ps'])).stdout
  assert.match(shown, /^public-a\s+running\s+\S+\s+1 \(canary 2: 10 %, \d+ s left\)/m)
  const promote = await command(t, dir, ['canary', 'promote', 'public-a'])
  assert.equal(promote.code, 0, promote.stderr)
  assert.match(promote.stdout, /^public-a \(127\.0\.0\.1:0\): canary promoted$/m)
  const restart = await restarting
  await traffic.stop()
  assert.equal(restart.code, 0, restart.stderr)
  assert.match(restart.stdout, /^public-a \(127\.0\.0\.1:0\): running, generation 2; canary promoted/m)
  const none = await command(t, dir, ['canary', 'abort'])
  assert.equal(none.code, 5, none.stderr)
  assert.match(none.stderr, /no canary runs/)
  assert.equal((await command(t, dir, ['canary', 'promte'])).code, 2)
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('reload --canary 10 with good code: exit 0 within the window, the new code served 3 to 30 % meanwhile and all afterwards, no error; SIGTERM during a canary: exit 0', async (t) => {
  const { dir, pool, traffic } = await publicAChanges(t)
  writeFileSync(join(dir, 'routes/public.js'), "export default async function (app) { app.get('/', async () => 'new') }\n")
  const began = Date.now()
  const reload = await command(t, dir, ['reload', '--canary', '10'])
  const took = Date.now() - began
  const judged = new Map(traffic.bodies)
  assert.equal(reload.code, 0, reload.stdout + reload.stderr)
  assert.match(reload.stdout, /^public-a: canary promoted \(canary generation 2: \d+ requests/m)
  assert.ok(took < 30_000, `the verdict came after ${took} ms (window 20 s)`)
  const share = (judged.get('new') ?? 0) / ((judged.get('new') ?? 0) + (judged.get('public') ?? 0))
  assert.ok(share >= 0.03 && share <= 0.3, `the new code served ${(share * 100).toFixed(1)} % while judged`)
  // Once promoted, the new code serves every request.
  const before = traffic.bodies.get('public') ?? 0
  await command(t, dir, ['ps'])
  assert.equal(traffic.bodies.get('public') ?? 0, before)
  const seen = await traffic.stop()
  assert.equal(seen.errors, 0)
  assert.deepEqual([...seen.statuses.keys()], [200])
  // A second canary, cut short by SIGTERM: the process drains and exits 0.
  writeFileSync(join(dir, 'routes/public.js'), "export default async function (app) { app.get('/', async () => 'newer') }\n")
  const second = command(t, dir, ['reload', '--canary', '10'])
  await pool.waitFor(out => /"msg":"canary started"/.test(out.split('"msg":"canary promoted"').at(-1) ?? ''), 20_000)
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0, pool.stdout().slice(-2000))
  await second
})
