// `fastify-pool restart --canary` and `reload --canary` with --workers: one
// verdict for the pool, judged in one worker (canary-roll.ts, requests.ts).
// Child processes on real sockets. (Apart from cli-canary.test.ts, so that
// neither file runs for over a minute.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, get } from './fixtures/cli.ts'
import { command } from './fixtures/operate.ts'
import { load } from './fixtures/keep-alive-load.ts'
import { project as clusterProject, ROUTES, started as clusterStarted } from './fixtures/cluster.ts'

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

test('--workers 2: reload --canary judges in one worker; rolled back, no worker changes (exit 1); promoted, every worker is rolled to the new code (exit 0); a file that adds a listener, or an invalid one, is refused', async (t) => {
  const p = await clusterProject(t)
  // The admin listener (the control API's) keeps a module of its own: only public changes.
  const file = join(p.dir, 'pool.yaml')
  writeFileSync(join(p.dir, 'admin.js'), "export default async function (app) { app.get('/', async () => 'admin') }\n")
  writeFileSync(file, readFileSync(file, 'utf8').replace('  main: ./routes.js\n', '  main: ./routes.js\n  admin: ./admin.js\n').replace(/(name: admin\n {4}listen: [^\n]+\n {4}handler: )main/, '$1admin'))
  const pool = await clusterStarted(t, p)
  // A new connection for each request, so that each worker takes some (one may accept many keep-alive ones in a row): the judging one needs requests.
  const traffic = load(`http://127.0.0.1:${p.port}/`, 8, true)
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

  // An invalid file: refused as without --canary, every problem named by its field.
  writeFileSync(file, readFileSync(file, 'utf8').replace(/ {2}- name: extra\n[^]*$/, '').replace('    stopOrder: 1\n', '    stopOrder: 1\n    lisen: 127.0.0.1:1\n'))
  const invalid = await command(t, p.dir, ['reload', '--canary', '20'])
  assert.equal(invalid.code, 1, invalid.stdout + invalid.stderr)
  assert.match(invalid.stderr, /reload refused, still serving the previous configuration: the file is invalid \(1 problem\):\n {2}servers\[1\]\.lisen: .*did you mean "listen"/)

  const seen = await traffic.stop()
  assert.equal(seen.errors, 0)
  assert.ok((seen.statuses.get(500) ?? 0) > 0 && (seen.statuses.get(200) ?? 0) > 0, JSON.stringify([...seen.statuses]))
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})
