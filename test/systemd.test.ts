// Sockets passed by systemd (socket activation: LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES), with Debian's systemd-socket-activate, which holds the
// socket and execs the command on the first connection exactly as systemd
// does: the pool serves on the socket it was given, and across 6 upgrades
// of its process under load no connection is refused. A listener naming a
// socket that was not passed is a validation error. examples/systemd's
// units agree with its pool file.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPool } from 'fastify-pool'
import { BIN, freePort, get, logLines, ROOT, run, tempDir } from './fixtures/cli.ts'
import { owned, track } from './fixtures/owned.ts'
import { APP, assertAllServed, heyUntil, NO_HEY, systemdPoolYaml } from './fixtures/upgrade.ts'

// Each one replaces the process under two loads; six fit the file's time on a busy machine too.
const UPGRADES = 6

const ACTIVATE = spawnSync('systemd-socket-activate', ['--help'], { stdio: 'ignore' }).error === undefined
const skip = ACTIVATE ? NO_HEY : 'no systemd-socket-activate on this machine (apt-get install systemd)'

/** `systemd-socket-activate -l 127.0.0.1:PORT --fdname=web node fastify-pool start ...` in `dir`. */
async function activate (t: TestContext, dir: string, port: number, name = 'web'): Promise<{ output: () => string, exited: Promise<number | null>, pids: () => number[], until: (test: (out: string) => boolean, what: string) => Promise<void> }> {
  const [command, args] = owned('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, `--fdname=${name}`, '-E', 'NO_COLOR=1', '-E', `PATH=${process.env.PATH ?? ''}`,
    process.execPath, BIN, 'start', '--json', '--pid-file', join(dir, 'pool.pid'), 'pool.yaml'])
  const proc = track(spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''
  const waiters = new Set<() => void>()
  const add = (c: string): void => { out += c; for (const w of waiters) w() }
  proc.stdout?.setEncoding('utf8').on('data', add)
  proc.stderr?.setEncoding('utf8').on('data', add)
  /** Resolves once the output (of every process so far: the successors write to the same pipes) passes `test`. */
  const until = (test: (all: string) => boolean, what: string, ms = 20_000): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => { if (test(out)) { clearTimeout(timer); waiters.delete(check); resolve() } }
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out: ${what}\n${out.slice(-2000)}`)) }, ms)
    waiters.add(check)
    check()
  })
  const exited = new Promise<number | null>(resolve => proc.once('exit', code => resolve(code)))
  const pids = (): number[] => [...new Set(logLines(out).map(l => l.pid).filter((p): p is number => typeof p === 'number'))]
  t.after(() => {
    proc.kill('SIGKILL')
    for (const pid of pids()) { try { process.kill(pid, 'SIGKILL') } catch {} }
  })
  await until(all => all.includes('Listening on'), 'systemd-socket-activate listens')
  return { output: () => out, exited, pids, until }
}

test('the pool serves on the socket systemd passed; 6 upgrades of its process under load refuse no connection', { skip, timeout: 90_000 }, async (t) => {
  const dir = tempDir(t, 'fastify-pool-systemd-')
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'pool.yaml'), systemdPoolYaml('web', admin))
  writeFileSync(join(dir, 'app.mjs'), APP)
  const pool = await activate(t, dir, port)
  // The first connection starts the service (it waits in the backlog meanwhile), as with systemd.
  const first = await get(`http://127.0.0.1:${port}/`)
  assert.equal(first.status, 200)
  await pool.until(out => /"msg":"pool started"/.test(out), 'pool started')
  const started = logLines(pool.output()).find(l => l.msg === 'pool started') as { listeners: Array<{ name: string, bind: string, url?: string }> }
  assert.deepEqual(started.listeners.find(l => l.name === 'public')?.bind, 'systemd:web')
  const pidFile = join(dir, 'pool.pid')
  // The loads run until the last hand-over is done.
  let finish!: () => void
  const upgrading = new Promise<void>(resolve => { finish = resolve })
  t.after(() => finish())
  const loads = [heyUntil(t, `http://127.0.0.1:${port}/`, upgrading, ['-disable-keepalive']), heyUntil(t, `http://127.0.0.1:${port}/`, upgrading)]
  for (let i = 1; i <= UPGRADES; i++) {
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGUSR2')
    // Until the process replaced has stopped: before that the new one is still taking over, and refuses.
    await pool.until(out => (out.match(/"msg":"pool stopped"/g) ?? []).length >= i, `hand-over ${i}`)
  }
  finish()
  assertAllServed(await Promise.all(loads))
  const last = Number(readFileSync(pidFile, 'utf8'))
  assert.equal((JSON.parse((await get(`http://127.0.0.1:${port}/`)).body) as { pid: number }).pid, last)
  assert.equal(pool.pids().length, UPGRADES + 1)
  assert.equal(await pool.exited, 0, 'the first process exited 0 after its hand-over')
})

test('a listener naming a socket that was not passed is a validation error with its path, under systemd or not', { skip: ACTIVATE ? false : 'no systemd-socket-activate', timeout: 30_000 }, async (t) => {
  const dir = tempDir(t, 'fastify-pool-systemd-')
  const port = await freePort()
  writeFileSync(join(dir, 'pool.yaml'), systemdPoolYaml('other', await freePort()))
  writeFileSync(join(dir, 'app.mjs'), APP)
  const pool = await activate(t, dir, port, 'web')
  // The connection that starts it is closed when it exits.
  await get(`http://127.0.0.1:${port}/`).catch(() => {})
  assert.equal(await pool.exited, 1)
  const problem = (out: string): { path?: unknown, message?: unknown } | undefined => logLines(out).find(l => l.code === 'FST_POOL_VALIDATE' && l.path !== undefined)
  assert.equal(problem(pool.output())?.path, 'servers[0].listen')
  assert.match(String(problem(pool.output())?.message), /names the systemd socket "other", which was not passed \(passed: web/)

  const plain = run(t, [BIN, 'start', '--json', 'pool.yaml'], { cwd: dir })
  assert.equal((await plain.exited).code, 1)
  assert.equal(problem(plain.stderr())?.path, 'servers[0].listen')
  assert.match(String(problem(plain.stderr())?.message), /this process was given none \(LISTEN_FDS is not set for it/)
  assert.doesNotMatch(plain.stderr(), /TypeError|\n\s+at /)
})

test('createPool checks fd:N and systemd:NAME addresses; parseListen refuses the standard descriptors', () => {
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: 'fd:987' }, { name: 'b', listen: 'systemd:web' }] }), (err: Error & { code?: string, errors?: Array<{ path: string, message: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors?.map(e => e.path), ['servers[0].listen', 'servers[1].listen'])
    assert.match(err.errors?.[0]?.message ?? '', /descriptor 987, which is not open in this process/)
    return true
  })
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: 'fd:1' }] }), /fd takes the number of an open listening socket, 3 or more/)
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: 'systemd:' }] }), /systemd takes the name of a socket/)
})

test('examples/systemd: the socket unit passes the name the pool file listens on, and the service is what an upgrade needs', async (t) => {
  const dir = join(ROOT, 'examples/systemd')
  const unit = (file: string): Map<string, string[]> => {
    const keys = new Map<string, string[]>()
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
      if (m !== null) keys.set(m[1] as string, [...(keys.get(m[1] as string) ?? []), m[2] as string])
    }
    return keys
  }
  const socket = unit('fastify-pool.socket')
  const service = unit('fastify-pool.service')
  const pool = readFileSync(join(dir, 'pool.yaml'), 'utf8')
  const names = [...pool.matchAll(/listen: systemd:(\S+)/g)].map(m => m[1])
  assert.deepEqual(names, socket.get('FileDescriptorName'))
  assert.deepEqual(socket.get('Service'), ['fastify-pool.service'])
  assert.deepEqual(service.get('Sockets'), ['fastify-pool.socket'])
  assert.deepEqual(service.get('Type'), ['notify'], 'the pool tells systemd when it is ready, and the new main pid after an upgrade')
  assert.deepEqual(service.get('NotifyAccess'), ['all'], 'the successor is not the process systemd started')
  assert.match(service.get('ExecStart')?.[0] ?? '', /fastify-pool start .*pool\.yaml$/)
  assert.deepEqual(service.get('ExecReload'), ['/bin/kill -HUP $MAINPID'])
  const stopTimeout = Number(/stopTimeout: (\d+)/.exec(pool)?.[1])
  assert.ok(Number(service.get('TimeoutStopSec')?.[0]) * 1000 >= stopTimeout + 5000, 'systemd waits for the drain')
  // The file is valid as it stands (validate does not ask for the socket itself).
  const validate = run(t, [BIN, 'validate', 'pool.yaml'], { cwd: dir })
  assert.equal((await validate.exited).code, 0, validate.stdout() + validate.stderr())
})
