// `fastify-pool upgrade` and SIGUSR2: the whole process is replaced while
// clients keep sending, over TCP (keep-alive and not), a unix socket, HTTPS
// and HTTP/2, and not one request is refused, reset or answered other than
// 200 (upgrade-failures.test.ts: when it cannot).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, freePort, get, logLines, run, TLS } from './fixtures/cli.ts'
import { assertAllServed, hey, NO_HEY, startUpgradable, survivors, unixLoad } from './fixtures/upgrade.ts'

const APP = 'export default async function (app) { app.get(\'/\', async () => ({ pid: process.pid })) }\n'

function poolYaml (ports: { public: number, secure: number, h2: number, admin: number }, extra = ''): string {
  return `servers:
  - name: public
    listen: 127.0.0.1:${ports.public}
  - name: sock
    listen: unix:./app.sock
  - name: secure
    listen: 127.0.0.1:${ports.secure}
    tls: { cert: ${join(TLS, 'server.crt')}, key: ${join(TLS, 'server.key')} }
  - name: h2
    listen: 127.0.0.1:${ports.h2}
    http2: true
    tls: { cert: ${join(TLS, 'server.crt')}, key: ${join(TLS, 'server.key')} }
  - name: admin
    listen: 127.0.0.1:${ports.admin}
handlers:
  default: ./app.mjs
control:
  listener: admin
defaults:
  stopTimeout: 5000
  logLevel: warn
${extra}`
}

async function ports (): Promise<{ public: number, secure: number, h2: number, admin: number }> {
  return { public: await freePort(), secure: await freePort(), h2: await freePort(), admin: await freePort() }
}

test('10 upgrades under load over TCP (keep-alive and not), a unix socket, HTTPS and HTTP/2: no request fails, the socket file stays the same', { skip: NO_HEY, timeout: 120_000 }, async (t) => {
  const p = await ports()
  const pool = await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP })
  const first = pool.pid()
  const sock = join(pool.dir, 'app.sock')
  const inode = statSync(sock).ino
  const seconds = 16
  const loads = [
    hey(t, `http://127.0.0.1:${p.public}/`, seconds),
    hey(t, `http://127.0.0.1:${p.public}/`, seconds, ['-disable-keepalive']),
    hey(t, `https://127.0.0.1:${p.secure}/`, seconds),
    hey(t, `https://127.0.0.1:${p.h2}/`, seconds, ['-h2'])
  ]
  const overUnix = unixLoad(sock)
  const served = new Set<number>([first])
  // Half by the command, half by SIGUSR2 to whichever process the pid file names.
  for (let i = 1; i <= 10; i++) {
    if (i % 2 === 1) {
      const cmd = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: pool.dir })
      const { code } = await cmd.exited
      assert.equal(code, 0, cmd.stdout() + cmd.stderr())
      assert.match(cmd.stdout(), /^upgraded: process \d+ \(Node v[\d.]+\) serves every listener; process \d+ drains and exits\n$/)
    } else {
      process.kill(pool.pid(), 'SIGUSR2')
    }
    await pool.handOvers(i)
    served.add(pool.pid())
  }
  const unix = await overUnix.stop()
  const results = await Promise.all(loads)
  assertAllServed(results)
  assert.deepEqual({ errors: unix.errors, non2xx: unix.non2xx }, { errors: [], non2xx: 0 })
  assert.ok(unix.total > 100)
  assert.equal(served.size, 11, 'eleven processes served in turn')
  assert.equal(statSync(sock).ino, inode, 'the socket file was never removed or made again')
  // Exactly one process serves now, the one the pid file names; the others exited 0.
  assert.deepEqual(await survivors(pool.pids(), 1), [pool.pid()])
  assert.equal((await pool.child.exited).code, 0)
  const answer = await get(`http://127.0.0.1:${p.public}/`)
  assert.equal((JSON.parse(answer.body) as { pid: number }).pid, pool.pid())
  // The counter goes on across the processes (each hands its counts on).
  const events = logLines(pool.child.stdout()).filter(l => l.msg === 'serving every listener: process ' + String(l.previous) + ' hands over to this one')
  assert.equal(events.length, 10)
})
