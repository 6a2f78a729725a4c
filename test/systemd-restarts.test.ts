// Restarts of the process as systemd makes them: the socket is held while no
// process serves it (as systemd holds a .socket unit's), and each new process
// is given it (descriptor 3, LISTEN_FDS, LISTEN_FDNAMES). Under load from hey
// (Debian's), on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { bindSocket } from 'fastify-pool/sockets'
import { BIN, freePort, get, tempDir } from './fixtures/cli.ts'
import { owned, track } from './fixtures/owned.ts'
import { APP, assertAllServed, heyUntil, NO_HEY, systemdPoolYaml } from './fixtures/upgrade.ts'

// Each one stops the process and starts another under two loads; six fit the file's time on a busy machine too.
const RESTARTS = 6

test('6 restarts of the process (stop, then a new one) while the socket is held for it, as systemd holds it: under load no connection is refused', { skip: NO_HEY, timeout: 120_000 }, async (t) => {
  // systemd-socket-activate execs the command once and holds nothing after
  // it: the restarts of a service are systemd's. This test holds the socket
  // itself and passes it to each new process the way systemd does
  // (descriptor 3, LISTEN_FDS, LISTEN_FDNAMES). The socket stays open while
  // no process serves it: connections wait in its backlog, none is refused.
  const held = await bindSocket({ kind: 'tcp', host: '127.0.0.1', port: 0 })
  assert.ok(held !== undefined && held.port !== undefined)
  t.after(() => held.close())
  const dir = tempDir(t, 'fastify-pool-systemd-')
  const admin = await freePort()
  writeFileSync(join(dir, 'pool.yaml'), systemdPoolYaml('web', admin))
  writeFileSync(join(dir, 'app.mjs'), APP)
  const serve = async (): Promise<{ pid: number, exited: Promise<number | null> }> => {
    const [command, args] = owned(process.execPath, [BIN, 'start', '--json', 'pool.yaml'])
    const proc = track(spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe', held.fd], env: { ...process.env, NO_COLOR: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' } }))
    t.after(() => { if (proc.exitCode === null) proc.kill('SIGKILL') })
    let out = ''
    await new Promise<void>((resolve, reject) => {
      proc.stdout?.setEncoding('utf8').on('data', (c: string) => { out += c; if (out.includes('"msg":"pool started"')) resolve() })
      proc.stderr?.resume()
      proc.once('exit', (code) => reject(new Error(`exited ${String(code)} before it served: ${out.slice(-2000)}`)))
    })
    return { pid: proc.pid as number, exited: new Promise(resolve => proc.once('exit', code => resolve(code))) }
  }
  let current = await serve()
  const url = `http://127.0.0.1:${held.port}/`
  assert.equal((await get(url)).status, 200)
  let finish!: () => void
  const restarting = new Promise<void>(resolve => { finish = resolve })
  const loads = [heyUntil(t, url, restarting), heyUntil(t, url, restarting, ['-disable-keepalive'])]
  const served = new Set<number>([current.pid])
  try {
    for (let i = 0; i < RESTARTS; i++) {
      process.kill(current.pid, 'SIGTERM')
      assert.equal(await current.exited, 0, 'the stopped process drained and exited 0')
      current = await serve()
      served.add(current.pid)
      // It serves (the backlog that waited for it included) before the next stop.
      const answer = JSON.parse((await get(url)).body) as { pid: number }
      assert.equal(answer.pid, current.pid)
    }
  } finally {
    finish()
  }
  const results = await Promise.all(loads)
  // Between two processes no one accepts (the connections wait in the backlog): a load without keep-alive gets few answers in so short a run.
  assertAllServed(results, 20)
  assert.equal(served.size, RESTARTS + 1, 'a new process for each restart')
  process.kill(current.pid, 'SIGTERM')
  assert.equal(await current.exited, 0)
})
