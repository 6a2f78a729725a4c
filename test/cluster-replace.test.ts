// `fastify-pool start --workers 2`: a replacement worker that cannot start
// (a database down, a port another program took) is not a crash loop. It is
// tried again, waiting longer each time, while the other worker serves;
// once the cause is gone one starts, and two workers serve again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { logLines } from './fixtures/cli.ts'
import { ROUTES, pids, project, started, workerPids } from './fixtures/cluster.ts'
import { keepAliveLoad } from './fixtures/load.ts'

test('a replacement that cannot start is tried again until it can, and is not counted as a crash; the other worker serves with no failed request', async (t) => {
  const p = await project(t)
  // A worker started while the marker file exists fails while loading its routes.
  writeFileSync(join(p.dir, 'routes.js'), `import { existsSync } from 'node:fs'\nif (existsSync(new URL('./database-down', import.meta.url))) throw new Error('the database is down')\n${ROUTES('v1')}`)
  const child = await started(t, p)
  const [victim, survivor] = workerPids(child) as [number, number]
  writeFileSync(join(p.dir, 'database-down'), '')
  process.kill(victim, 'SIGKILL')
  await child.waitFor(out => /"msg":"a worker died; starting another"/.test(out))
  // From here every new connection reaches the survivor.
  const load = keepAliveLoad(`http://127.0.0.1:${p.port}/`, 4)
  t.after(() => load.stop())
  // Four failed replacements after the death: five deaths in a minute, which a crash count would end.
  const failures = (out: string): number => logLines(out).filter(l => /a replacement worker could not start its pool/.test(String(l.msg))).length
  await child.waitFor(out => failures(out) >= 4)
  assert.doesNotMatch(child.stdout(), /giving up/)
  assert.deepEqual([...await pids(p.port, 10)], [survivor])
  rmSync(join(p.dir, 'database-down'))
  await child.waitFor(out => logLines(out).filter(l => l.msg === 'pool started' && l.worker !== undefined).length >= 3)
  const answering = await pids(p.port, 300, 2)
  assert.equal(answering.size, 2, 'two workers serve again')
  const result = await load.stop()
  assert.ok(result.total > 20, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no failed request')
  assert.equal(result.non2xx, 0)
  // The backoff doubles: each retry waited longer than the one before.
  const waits = logLines(child.stdout()).filter(l => /could not start its pool/.test(String(l.msg))).map(l => Number(l.restartIn))
  assert.ok(waits.every((w, i) => i === 0 || w >= waits[i - 1]!), `waits ${waits.join(', ')}`)
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
