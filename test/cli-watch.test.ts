// `fastify-pool start --watch` and `--env-file`, in child processes on real sockets.
/* eslint-disable no-template-curly-in-string -- ${VAR} expressions are part of the pool files here */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { BIN, freePort, get, logLines, run } from './fixtures/cli.ts'
import { ROUTE, command, project, started } from './fixtures/operate.ts'

test('--watch: an edited route module serves at the next request with no failed request in between; a syntax error keeps the old code', async (t) => {
  const dir = project(t, 'handlers:\n  public: ./routes/public.js\nservers:\n  - name: public\n    listen: 127.0.0.1:0\n    handler: public\n')
  const pool = await started(t, dir, {}, ['--watch'])
  const url = (logLines(pool.stdout()).find(l => l.msg === 'pool started')?.listeners as Array<{ url: string }>)[0]?.url ?? ''
  assert.equal((await get(`${url}/`)).body, 'public')

  // Keep-alive load across the edit.
  let load!: autocannon.Instance
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    load = autocannon({ url: `${url}/`, connections: 4, duration: 60 }, (err, result) => err == null ? resolve(result) : reject(err))
  })
  t.after(() => load.stop())
  writeFileSync(join(dir, 'routes/public.js'), ROUTE('edited'))
  await pool.waitFor(out => /"msg":"configuration reloaded"/.test(out))
  assert.equal((await get(`${url}/`)).body, 'edited')

  writeFileSync(join(dir, 'routes/public.js'), 'export default async function (app) { app.get(\'/\', async () => \'broken\' }\n')
  await pool.waitFor(out => /reload rejected/.test(out))
  assert.equal((await get(`${url}/`)).body, 'edited', 'the previous code keeps serving')
  load.stop()
  const result = await finished
  assert.ok(result.requests.total > 0)
  assert.equal(result.errors, 0, 'no failed request')
  assert.equal(result.non2xx, 0)
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('--env-file supplies ${VAR} values; variables already set win', async (t) => {
  const port = await freePort()
  const dir = project(t, 'servers:\n  - name: a\n    listen: 127.0.0.1:${A_PORT}\n  - name: b\n    listen: ${B_LISTEN}\n')
  const other = await freePort()
  writeFileSync(join(dir, 'local.env'), `A_PORT=${port}\nB_LISTEN=127.0.0.1:1\n`)
  const child = run(t, [BIN, 'start', '--json', '--env-file', 'local.env'], { cwd: dir, env: { B_LISTEN: `127.0.0.1:${other}` } })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  assert.equal((await get(`http://127.0.0.1:${port}/healthz`)).status, 200)
  assert.equal((await get(`http://127.0.0.1:${other}/healthz`)).status, 200)
  child.proc.kill('SIGTERM')
  await child.exited
  // Node itself checks an --env-file anywhere on its command line, before the command runs.
  const missing = await command(t, dir, ['validate', '--env-file', 'nope.env'])
  assert.equal(missing.code, 9)
  assert.match(missing.stderr, /nope\.env: not found/)
  assert.doesNotMatch(missing.stderr, /at .*\(/, 'no stack trace')
})
