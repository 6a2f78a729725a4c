// `fastify-pool reload --canary`, `restart --canary` and `canary
// promote|abort` against a `fastify-pool start` of the same file: the
// verdict is the exit code and one line. Child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, get } from './fixtures/cli.ts'
import { command, poolFile, project, started } from './fixtures/operate.ts'
import { project as clusterProject, ROUTES, started as clusterStarted } from './fixtures/cluster.ts'

/** Keep-alive GETs on `url` until stopped; the statuses and bodies seen. */
function load (url: string, sockets = 4): { stop: () => Promise<{ statuses: Map<number, number>, bodies: Map<string, number>, errors: number }>, bodies: Map<string, number> } {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets })
  const statuses = new Map<number, number>()
  const bodies = new Map<string, number>()
  const state = { running: true, errors: 0 }
  const one = (): Promise<void> => new Promise(resolve => {
    request(url, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1)
        bodies.set(body, (bodies.get(body) ?? 0) + 1)
        resolve()
      })
    }).on('error', () => { state.errors++; resolve() }).end()
  })
  const loops = Array.from({ length: sockets }, async () => { while (state.running) await one() })
  return {
    stop: async () => {
      state.running = false
      await Promise.all(loops)
      agent.destroy()
      return { statuses, bodies, errors: state.errors }
    },
    bodies
  }
}

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

test('--workers 2: restart --canary judges in one worker (one verdict for the pool); promoted there, every worker restarts; canary abort reaches it through any worker', async (t) => {
  const p = await clusterProject(t)
  const pool = await clusterStarted(t, p)
  const traffic = load(`http://127.0.0.1:${p.port}/`)
  t.after(() => traffic.stop())
  const generations = async (): Promise<number[]> => {
    const ps = await command(t, p.dir, ['ps', '--json'])
    return (JSON.parse(ps.stdout) as { workers: Array<{ listeners: Array<{ name: string, generation: number, canary?: { share: number } }> }> }).workers.map(w => w.listeners.find(l => l.name === 'public')!.generation)
  }
  const canaryShown = async (): Promise<boolean> => /canary \d+: 40 %/.test((await command(t, p.dir, ['ps'])).stdout)

  // Aborted: no worker changes.
  const aborting = command(t, p.dir, ['restart', 'public', '--canary', '20'])
  let shown = false
  for (let i = 0; i < 100 && !shown; i++) shown = await canaryShown()
  assert.ok(shown, 'ps shows the canary, at 40 % of its worker (20 % of the pool)')
  const abort = await command(t, p.dir, ['canary', 'abort', 'public'])
  assert.equal(abort.code, 0, abort.stdout + abort.stderr)
  const aborted = await aborting
  assert.equal(aborted.code, 1, aborted.stdout + aborted.stderr)
  assert.match(aborted.stdout, /worker \d+: public \(127\.0\.0\.1:\d+\): running, generation 1; canary aborted/)
  assert.deepEqual(await generations(), [1, 1])

  // Promoted in one worker: then the other restarts too.
  const promoting = command(t, p.dir, ['restart', 'public', '--canary', '20'])
  shown = false
  for (let i = 0; i < 100 && !shown; i++) shown = await canaryShown()
  assert.equal((await command(t, p.dir, ['canary', 'promote'])).code, 0)
  const promoted = await promoting
  assert.equal(promoted.code, 0, promoted.stdout + promoted.stderr)
  assert.equal(promoted.stdout.trim().split('\n').length, 2, 'a line per worker')
  assert.ok((await generations()).every(g => g >= 2))
  const seen = await traffic.stop()
  assert.equal(seen.errors, 0)
  assert.deepEqual([...seen.statuses.keys()], [200])
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

test('--workers 2: reload --canary judges in one worker; rolled back, no worker changes (exit 1); promoted, every worker is rolled to the new code (exit 0); a file that adds a listener is refused', async (t) => {
  const p = await clusterProject(t)
  // The admin listener (the control API's) keeps a module of its own: only public changes.
  const file = join(p.dir, 'pool.yaml')
  writeFileSync(join(p.dir, 'admin.js'), "export default async function (app) { app.get('/', async () => 'admin') }\n")
  writeFileSync(file, readFileSync(file, 'utf8').replace('  main: ./routes.js\n', '  main: ./routes.js\n  admin: ./admin.js\n').replace(/(name: admin\n {4}listen: [^\n]+\n {4}handler: )main/, '$1admin'))
  const pool = await clusterStarted(t, p)
  // Enough connections that each worker takes some (one may accept many in a row): the judging one needs requests.
  const traffic = load(`http://127.0.0.1:${p.port}/`, 24)
  t.after(() => traffic.stop())
  const versions = async (): Promise<Set<string>> => {
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) seen.add((JSON.parse((await get(`http://127.0.0.1:${p.port}/`)).body) as { version: string }).version)
    return seen
  }

  // Every fifth request of the new code fails: rolled back in the judging worker, the other never touched.
  writeFileSync(join(p.dir, 'routes.js'), ROUTES('v2').replace("app.get('/', async () =>", "let n = 0\n  app.get('/', async (_r, reply) => ++n % 5 === 0 ? reply.code(500).send({ bad: true }) :"))
  const bad = await command(t, p.dir, ['reload', '--canary', '20'])
  assert.equal(bad.code, 1, bad.stdout + bad.stderr)
  assert.match(bad.stdout, /^public: canary rolled back on errors: 5xx share /m)
  assert.deepEqual(await versions(), new Set(['v1']))

  // Good code: judged in one worker (promoted by hand here), then every worker rolls to it.
  writeFileSync(join(p.dir, 'routes.js'), ROUTES('v3'))
  const reloading = command(t, p.dir, ['reload', '--canary', '20'])
  let shown = false
  for (let i = 0; i < 100 && !shown; i++) shown = /canary \d+: 40 %/.test((await command(t, p.dir, ['ps'])).stdout)
  assert.ok(shown, 'ps shows the canary, at 40 % of its worker (20 % of the pool)')
  assert.equal((await command(t, p.dir, ['canary', 'promote'])).code, 0)
  const good = await reloading
  assert.equal(good.code, 0, good.stdout + good.stderr)
  assert.match(good.stdout, /^public: canary promoted/m)
  assert.match(good.stdout, /^judged in worker \d+; every worker is now replaced by a rolling reload/m)
  await pool.waitFor(out => /rolling reload done/.test(out), 30_000)
  assert.deepEqual(await versions(), new Set(['v3']))

  // A listener added: refused, nothing changes.
  writeFileSync(file, readFileSync(file, 'utf8') + `  - name: extra\n    listen: 127.0.0.1:${await freePort()}\n    handler: main\n`)
  const added = await command(t, p.dir, ['reload', '--canary', '20'])
  assert.equal(added.code, 1, added.stdout + added.stderr)
  assert.match(added.stderr, /changes existing listeners only .* adds, removes or moves extra: reload without --canary/)

  const seen = await traffic.stop()
  assert.equal(seen.errors, 0)
  assert.ok((seen.statuses.get(500) ?? 0) > 0 && (seen.statuses.get(200) ?? 0) > 0, JSON.stringify([...seen.statuses]))
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})
