// Nothing outlives a test run: a test file cancelled by its timeout, while it
// runs `fastify-pool start --workers 2`, leaves no process and no bound port.
// The runner kills a timed-out file's process with SIGTERM, so its `t.after`
// cleanup never runs; the children must notice on their own.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { ROOT, run, tempDir } from './fixtures/cli.ts'
import { guarded } from './fixtures/owned.ts'

interface Record { dir: string, port: number, pids: number[] }

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** Pids of processes whose working folder is `dir` (workers and their esbuild services included). */
function inFolder (dir: string): number[] {
  const found: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try { if (readlinkSync(`/proc/${name}/cwd`) === dir) found.push(Number(name)) } catch {}
  }
  return found
}

/** Polls (bounded) until `check` holds: a process's death is no event this process can await. */
async function eventually (check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) return false
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return true
}

async function bindable (port: number): Promise<boolean> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  const [outcome] = await Promise.race([once(server, 'listening').then(() => ['ok']), once(server, 'error').then(() => ['busy'])])
  if (outcome === 'ok') await new Promise(resolve => server.close(resolve))
  return outcome === 'ok'
}

test('a test file cancelled by its timeout leaves no process and no bound port behind', { skip: guarded ? false : 'needs setpriv (util-linux)' }, async (t) => {
  const recordFile = join(tempDir(t), 'record.json')
  const runner = run(t, ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=tap', '--test-timeout=15000', 'test/fixtures/cancelled-file.ts'], {
    cwd: ROOT,
    // Without the variable the runner sets for its files, the child is a runner of its own.
    env: { CANCELLED_RECORD: recordFile, NODE_TEST_CONTEXT: undefined }
  })
  const { code } = await runner.exited
  assert.notEqual(code, 0, 'the file was cancelled, so the run failed')
  const record = JSON.parse(readFileSync(recordFile, 'utf8')) as Record
  assert.equal(record.pids.length, 3, `the primary and both workers had started before the timeout: ${runner.stdout()}`)
  assert.ok(await eventually(() => record.pids.every(pid => !alive(pid)), 10_000), `still alive: ${record.pids.filter(alive).join(', ')}`)
  assert.ok(await eventually(() => inFolder(record.dir).length === 0, 10_000), `processes still in the project folder: ${inFolder(record.dir).join(', ')}`)
  assert.ok(await bindable(record.port), `port ${record.port} is still bound`)
})
