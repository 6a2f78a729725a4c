// The command reads its pool file once per process: a preload
// (fixtures/count-reads.mjs) notes each read of pool.yaml through node:fs,
// in the command and in its workers, and the test counts them.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, freePort, get, run, tempDir, type Child } from './fixtures/cli.ts'

const PRELOAD = new URL('./fixtures/count-reads.mjs', import.meta.url).href

/** `fastify-pool ARGS` in `dir`, with each read of pool.yaml noted; `reads()` lists the pid of each. */
function counted (t: TestContext, dir: string, args: string[]): { child: Child, reads: () => number[] } {
  const log = join(dir, 'reads.log')
  writeFileSync(log, '')
  const child = run(t, ['--import', PRELOAD, BIN, ...args], { cwd: dir, env: { COUNT_READS_NAME: 'pool.yaml', COUNT_READS_LOG: log } })
  return { child, reads: () => readFileSync(log, 'utf8').split('\n').filter(l => l !== '').map(Number) }
}

function poolYaml (port: number, admin: number, extra = ''): string {
  return `servers:
  - name: public
    listen: 127.0.0.1:${port}
  - name: secure
    listen: 127.0.0.1:0
    tls: { cert: ./dev.crt, key: ./dev.key }
  - name: admin
    listen: 127.0.0.1:${admin}
handlers:
  default: ./app.mjs
control:
  listener: admin
defaults:
  logLevel: warn
${extra}`
}

const APP = 'export default async function (app) { app.get(\'/\', async () => ({ pid: process.pid })) }\n'

test('one process with --dev-cert reads pool.yaml once to start, and once per reload', async (t) => {
  const dir = tempDir(t, 'fastify-pool-read-once-')
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'app.mjs'), APP)
  writeFileSync(join(dir, 'pool.yaml'), poolYaml(port, admin))
  const { child, reads } = counted(t, dir, ['start', '--json', '--dev-cert', 'pool.yaml'])
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200)
  assert.deepEqual(reads(), [child.proc.pid], 'the workers\' count, the development certificate and the pool: one read')

  writeFileSync(join(dir, 'pool.yaml'), poolYaml(port, admin, '  stopTimeout: 4000\n'))
  child.proc.kill('SIGHUP')
  await child.waitFor(out => /"msg":"configuration reloaded"/.test(out))
  assert.deepEqual(reads(), [child.proc.pid, child.proc.pid], 'a reload reads it once')
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})

test('--workers 2: the primary reads pool.yaml once, and the workers not at all (they start from the text it checked)', async (t) => {
  const dir = tempDir(t, 'fastify-pool-read-once-')
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'app.mjs'), APP)
  writeFileSync(join(dir, 'pool.yaml'), `workers: 2\n${poolYaml(port, admin).replace(/ {2}- name: secure\n.*\n.*\n/, '')}`)
  const { child, reads } = counted(t, dir, ['start', '--json', 'pool.yaml'])
  await child.waitFor(out => /"msg":"pool started in 2 workers"/.test(out))
  assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200)
  assert.deepEqual(reads(), [child.proc.pid], 'one read, by the primary')
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
})
