// `fastify-pool start --workers 2` recovers from what it can: a worker that
// dies while the pool file holds an unfinished edit is replaced from the
// configuration in force, and a reload whose new worker cannot start is the
// reload's failure (the others keep serving), not a crash loop.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { BIN, get, logLines, run } from './fixtures/cli.ts'
import { pids, project, started, workerPids } from './fixtures/cluster.ts'
import { keepAliveLoad } from './fixtures/load.ts'

const versions = async (port: number): Promise<Set<string>> => {
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) seen.add((JSON.parse((await get(`http://127.0.0.1:${port}/`)).body) as { version: string }).version)
  return seen
}

test('kill -9 of a worker while the pool file holds invalid YAML: the replacement starts from the configuration in force, with no failed request', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  writeFileSync(join(p.dir, 'pool.yaml'), 'workers: 2\nservers: [ { name: public, listen: \n')
  const [victim] = workerPids(child) as [number, number]
  process.kill(victim, 'SIGKILL')
  await child.waitFor(out => /"msg":"a worker died; starting another"/.test(out))
  // Load from the death on (what the dead worker had in flight died with it): the survivor, then both, serve it all.
  const load = keepAliveLoad(`http://127.0.0.1:${p.port}/`, 4)
  t.after(() => load.stop())
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 3)
  const answering = await pids(p.port, 300, 2)
  assert.equal(answering.size, 2, 'two workers serve again')
  assert.ok(!answering.has(victim))
  assert.doesNotMatch(child.stdout(), /giving up/)
  const result = await load.stop()
  assert.ok(result.total > 20, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no failed request')
  assert.equal(result.non2xx, 0)
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('a reload whose new listener cannot be bound (a busy port), then one whose new worker cannot start, are refused; the workers keep the previous configuration, and nothing counts as a crash', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const before = workerPids(child)
  const holder = createServer()
  holder.listen(0, '127.0.0.1')
  await once(holder, 'listening')
  t.after(() => new Promise(resolve => holder.close(resolve)))
  const busy = (holder.address() as AddressInfo).port
  const load = keepAliveLoad(`http://127.0.0.1:${p.port}/`, 4)
  t.after(() => load.stop())
  const yaml = readFileSync(join(p.dir, 'pool.yaml'), 'utf8').trimEnd()

  // The primary binds the sockets of added listeners before any new worker starts.
  writeFileSync(join(p.dir, 'pool.yaml'), `${yaml}\n  - name: extra\n    listen: 127.0.0.1:${busy}\n    handler: main\n`)
  const reload = run(t, [BIN, 'reload'], { cwd: p.dir })
  assert.equal((await reload.exited).code, 1, `the reload is refused: ${reload.stdout()} ${reload.stderr()}`)
  assert.match(reload.stderr(), new RegExp(`listener "extra" \\(127\\.0\\.0\\.1:${busy}\\): EADDRINUSE: address already in use`))
  await child.waitFor(out => /reload failed: a new listener could not be bound; every worker keeps the previous configuration/.test(out))

  // A handler that throws as the pool starts passes the primary's checks: the first new worker fails.
  writeFileSync(join(p.dir, 'throws.js'), 'export default async function () { throw new Error(\'no database\') }\n')
  writeFileSync(join(p.dir, 'pool.yaml'), `${yaml.replace('  main: ./routes.js', '  main: ./routes.js\n  throws: ./throws.js')}\n  - name: extra\n    listen: 127.0.0.1:0\n    handler: throws\n`)
  const second = run(t, [BIN, 'reload'], { cwd: p.dir })
  assert.equal((await second.exited).code, 1, `the reload is refused: ${second.stdout()} ${second.stderr()}`)
  assert.match(second.stderr(), /could not start its pool/)
  await child.waitFor(out => /the roll stops; the other workers keep the previous configuration/.test(out))

  assert.deepEqual([...await versions(p.port)], ['v1'])
  assert.deepEqual(new Set(await pids(p.port, 300, 2)), new Set(before), 'the same two workers serve')
  assert.doesNotMatch(child.stdout(), /a worker died|giving up/)
  const result = await load.stop()
  assert.ok(result.total > 20, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no failed request')
  assert.equal(result.non2xx, 0)
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
