// A process that started and stopped a pool exits by itself: no server,
// socket, timer or Fastify instance is left holding the event loop. Each case
// runs in a child process, which is killed (and the test failed) if it does
// not exit within the bound.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { owned, track } from './fixtures/owned.ts'

const child = fileURLToPath(new URL('./fixtures/leak-child.ts', import.meta.url))
// Generous: the child compiles TypeScript on start, and CI runs test files in parallel on 2 cores.
const BOUND = 30_000

interface Outcome { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, ms: number }

function run (mode: string): Promise<Outcome> {
  const began = Date.now()
  const proc = track(spawn(...owned(process.execPath, ['--conditions=source', '--import', 'tsx', child, mode]), { stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  let killed = false
  const timer = setTimeout(() => { killed = true; proc.kill('SIGKILL') }, BOUND)
  return new Promise((resolve, reject) => {
    proc.once('error', reject)
    proc.once('close', (code, signal) => {
      clearTimeout(timer)
      if (killed) reject(new Error(`the ${mode} child did not exit by itself within ${BOUND} ms (killed). stdout: ${stdout} stderr: ${stderr}`))
      else resolve({ code, signal, stdout, stderr, ms: Date.now() - began })
    })
  })
}

function result (outcome: Outcome): Record<string, any> {
  assert.equal(outcome.code, 0, `exit code 0 expected; stderr:\n${outcome.stderr}`)
  const line = outcome.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(line)
}

test('a process that served a keep-alive request and stopped its pool exits by itself', async () => {
  const r = result(await run('plain'))
  assert.deepEqual(r.first, { status: 200, connection: 'keep-alive', body: 'hello' }, 'the connection was kept alive')
  assert.equal(r.running, false)
  assert.equal(r.reports.length, 1)
  assert.equal(r.reports[0].cut, 0)
})

test('the same over HTTPS', async () => {
  const r = result(await run('tls'))
  assert.deepEqual(r.first, { status: 200, connection: 'keep-alive', body: 'hello' })
  assert.equal(r.reports[0].cut, 0)
})

test('the same when stop() reaches its deadline and cuts a request in flight', async () => {
  const r = result(await run('deadline'))
  assert.equal(r.reports[0].cut, 1, 'the request that never ends was cut')
  assert.ok(r.reports[0].duration >= 150, `stop waited for its deadline (${r.reports[0].duration} ms)`)
  assert.notEqual(r.client, 'answered', 'the client saw its connection cut')
})
