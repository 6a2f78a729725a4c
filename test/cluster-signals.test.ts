// `fastify-pool start --workers 2` and SIGTERM at any moment: during the
// start, and during a roll under load. Real processes on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BIN, get, run } from './fixtures/cli.ts'
import { project, started } from './fixtures/cluster.ts'
import { keepAliveLoad } from './fixtures/load.ts'

// The fixture's stopTimeout (8 s) plus the primary's margin (5 s): past it the primary kills its workers and exits 1.
const BOUND = 13_000

test('SIGTERM at any moment of the start (before, while and after the workers load): exit 0, nothing left serving', async (t) => {
  for (const after of [300, 900, 1500]) {
    const p = await project(t)
    const child = run(t, [BIN, 'start', '--json'], { cwd: p.dir })
    await new Promise(resolve => setTimeout(resolve, after))
    const began = Date.now()
    child.proc.kill('SIGTERM')
    const { code, signal } = await child.exited
    // From the bin's first line on, a SIGTERM is held until the command can honour it: exit 0 whether
    // it came while the command loaded, while the file was read (nothing started) or after the fork
    // (the workers drain). Only before Node runs that first line does its default action end the process.
    const beforeTheBin = child.stdout() === '' && child.stderr() === '' && signal === 'SIGTERM'
    assert.ok(beforeTheBin || code === 0, `SIGTERM ${after} ms after the start: exit ${code ?? signal} ${child.stdout().slice(-2000)}`)
    assert.ok(Date.now() - began < BOUND, `exited ${Date.now() - began} ms after the SIGTERM`)
    assert.doesNotMatch(child.stdout(), /killing them/)
    await assert.rejects(get(`http://127.0.0.1:${p.port}/`), 'nothing serves afterwards')
  }
})

test('SIGTERM 0.3 s after SIGHUP (during the roll) under load: exit 0 within the deadline, the new worker stops too, no request in flight fails', async (t) => {
  const p = await project(t)
  const child = await started(t, p)
  const load = keepAliveLoad(`http://127.0.0.1:${p.port}/slow`, 4)
  t.after(() => load.stop())
  child.proc.kill('SIGHUP')
  await new Promise(resolve => setTimeout(resolve, 300))
  const began = Date.now()
  // The load sends nothing new from here; what it has in flight (800 ms requests) must be answered.
  const loaded = load.stop()
  child.proc.kill('SIGTERM')
  const result = await loaded
  assert.ok(result.total >= 4, `${result.total} requests`)
  assert.deepEqual(result.errors, [], 'no request in flight failed')
  assert.equal(result.non2xx, 0)
  const { code } = await child.exited
  assert.equal(code, 0, child.stdout().slice(-2000))
  assert.ok(Date.now() - began < BOUND, `exited ${Date.now() - began} ms after the SIGTERM`)
  assert.doesNotMatch(child.stdout(), /killing them/)
  await assert.rejects(get(`http://127.0.0.1:${p.port}/`), 'nothing serves afterwards')
})
