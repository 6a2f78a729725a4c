// `fastify-pool upgrade` and SIGUSR2: the whole process is replaced while
// clients keep sending, over TCP (keep-alive and not), a unix socket, HTTPS
// and HTTP/2, and not one request is refused, reset or answered other than
// 200 (upgrade-failures.test.ts: when it cannot).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { statSync } from 'node:fs'
import { APP, assertAllServed, heyUntil, NO_HEY, poolYaml, ports, startUpgradable, survivors, unixLoad } from './fixtures/upgrade.ts'
import { BIN, get, logLines, run } from './fixtures/cli.ts'

// Each one replaces the process under four loads; six fit the file's time on a busy machine too.
const UPGRADES = 6

test('6 upgrades under load over TCP (keep-alive and not), a unix socket, HTTPS and HTTP/2: no request fails, the socket file stays the same', { skip: NO_HEY, timeout: 120_000 }, async (t) => {
  const p = await ports()
  const pool = await startUpgradable(t, { 'pool.yaml': poolYaml(p), 'app.mjs': APP })
  const first = pool.pid()
  const sock = join(pool.dir, 'app.sock')
  const inode = statSync(sock).ino
  // The loads run until the last upgrade is done.
  let finish!: () => void
  const upgrading = new Promise<void>(resolve => { finish = resolve })
  t.after(() => finish())
  const loads = [
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading),
    heyUntil(t, `http://127.0.0.1:${p.public}/`, upgrading, ['-disable-keepalive']),
    heyUntil(t, `https://127.0.0.1:${p.secure}/`, upgrading),
    heyUntil(t, `https://127.0.0.1:${p.h2}/`, upgrading, ['-h2'])
  ]
  const overUnix = unixLoad(sock)
  const served = new Set<number>([first])
  // Half by the command, half by SIGUSR2 to whichever process the pid file names.
  for (let i = 1; i <= UPGRADES; i++) {
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
  finish()
  const unix = await overUnix.stop()
  const results = await Promise.all(loads)
  assertAllServed(results)
  assert.deepEqual({ errors: unix.errors, non2xx: unix.non2xx }, { errors: [], non2xx: 0 })
  assert.ok(unix.total > 100)
  assert.equal(served.size, UPGRADES + 1, 'a new process for each upgrade')
  assert.equal(statSync(sock).ino, inode, 'the socket file was never removed or made again')
  // Exactly one process serves now, the one the pid file names; the others exited 0.
  assert.deepEqual(await survivors(pool.pids(), 1), [pool.pid()])
  assert.equal((await pool.child.exited).code, 0)
  const answer = await get(`http://127.0.0.1:${p.public}/`)
  assert.equal((JSON.parse(answer.body) as { pid: number }).pid, pool.pid())
  // The counter goes on across the processes (each hands its counts on).
  const events = logLines(pool.child.stdout()).filter(l => l.msg === 'serving every listener: process ' + String(l.previous) + ' hands over to this one')
  assert.equal(events.length, UPGRADES)
})
