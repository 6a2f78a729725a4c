// `fastify-pool start` and SIGHUP: a reload applies every setting it reports
// at once, not one reload late: the drain deadline, the monitor section and
// the log level, each observed in effect after one SIGHUP.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, logLines } from './fixtures/cli.ts'
import { send } from './fixtures/lifecycle.ts'
import { project, started } from './fixtures/operate.ts'

const file = (admin: number, defaults: string, extra = ''): string => `defaults:
${defaults}
${extra}
control:
  listener: admin
handlers:
  public: ./routes/public.js
servers:
  - name: public
    listen: 127.0.0.1:0
    handler: public
  - name: extra
    listen: 127.0.0.1:0
    handler: public
  - name: admin
    listen: 127.0.0.1:${admin}
    handler: public
`

test('one SIGHUP puts the new stopTimeout, monitor and log level in force at once', async (t) => {
  const admin = await freePort()
  const dir = project(t, file(admin, '  stopTimeout: 5000'))
  const pool = await started(t, dir)
  writeFileSync(join(dir, 'pool.yaml'), file(admin, '  stopTimeout: 1234\n  logLevel: debug', 'monitor:\n  interval: 200'))
  pool.proc.kill('SIGHUP')
  await pool.waitFor(out => /"msg":"configuration reloaded"/.test(out))
  // The reload is logged once, at info.
  assert.deepEqual(logLines(pool.stdout()).filter(l => l.level === 30 && /reloaded/.test(String(l.msg))).map(l => l.msg), ['configuration reloaded'])
  const reloadedAt = pool.stdout().length
  // The periodic checks run: the first that passes is logged.
  await pool.waitFor(out => logLines(out.slice(reloadedAt)).some(l => l.msg === 'health check passed' && l.listener === 'public'))
  // A listener's state changes are logged at debug: the new level is in force.
  const stopped = await send(`http://127.0.0.1:${admin}/pool/stop?name=extra`, { method: 'POST' })
  assert.equal(stopped.status, 200, stopped.body)
  await pool.waitFor(out => logLines(out.slice(reloadedAt)).some(l => l.level === 20 && l.msg === 'listener extra: stopped'))
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
  const draining = logLines(pool.stdout().slice(reloadedAt)).find(l => l.msg === 'SIGTERM: draining the pool')
  assert.equal(draining?.timeout, 1234, 'the new drain deadline')
})
