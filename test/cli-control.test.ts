// The control listener of a running `fastify-pool start`: a stop that would
// cut the commands off is refused, a forced one is reported as such, and a
// reload brings the listener back. Child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { freePort } from './fixtures/cli.ts'
import { command, poolFile, project, started } from './fixtures/operate.ts'

test('stop --force of the control listener: the commands say it is stopped while the pool runs, and SIGHUP brings it back', async (t) => {
  const [admin, publicPort] = [await freePort(), await freePort()]
  const dir = project(t, poolFile(admin).replace('  - name: public-a\n    listen: 127.0.0.1:0', `  - name: public-a\n    listen: 127.0.0.1:${publicPort}`))
  const pool = await started(t, dir)
  const forced = await command(t, dir, ['stop', 'admin', '--force'])
  assert.equal(forced.code, 0, forced.stderr)
  await pool.waitFor(out => /"listener":"admin"[^\n]*"msg":"listener stopped"/.test(out))
  const ps = await command(t, dir, ['ps'])
  assert.equal(ps.code, 3)
  assert.match(ps.stderr, /the control listener "admin" is stopped .*but the pool is running: listener "public-a" accepts connections.*SIGHUP/)
  assert.doesNotMatch(ps.stderr, /no pool is running/)
  pool.proc.kill('SIGHUP')
  await pool.waitFor(out => /"msg":"the reload starts the control listener again"/.test(out))
  await pool.waitFor(out => /"listener":"admin"[^\n]*"msg":"listener started"[\s\S]*$/.test(out.slice(out.indexOf('the reload starts the control listener again'))))
  const back = await command(t, dir, ['ps'])
  assert.equal(back.code, 0, back.stderr)
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})
