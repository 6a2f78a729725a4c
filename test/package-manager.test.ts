// The package manager is not a supervisor: SIGTERM to `npm start` or
// `pnpm start` must drain the pool and leave no process and no port, with a
// start script that execs the command (the starter's, the scaffolded app's,
// this repository's) and with one that does not (the command notices that
// the package manager is gone: parent-watch.ts). Real npm and pnpm, real
// processes on 127.0.0.1.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, freePort, get, logLines, ROOT, tempDir } from './fixtures/cli.ts'
import { owned, track } from './fixtures/owned.ts'

const has = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0
const APP = 'export default async function (app) { app.get(\'/\', async () => ({ pid: process.pid })) }\n'

/** Whether a process runs (a zombie that init has not reaped yet does not). */
function running (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Resolves once `pid` no longer runs (it is not a child of this process: no exit event to wait for), or rejects after `ms`. */
async function ended (pid: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (running(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs after ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A project whose start script runs the command, started with `manager start`; resolves with the package manager's process and the pool's pid once it serves. */
async function startWith (t: TestContext, manager: 'npm' | 'pnpm', script: string, prepare: (dir: string) => void = () => {}, argv: string[] = ['start']): Promise<{ port: number, pool: number, manager: ReturnType<typeof spawn>, output: () => string, exited: Promise<number | null> }> {
  const dir = tempDir(t, `fastify-pool-${manager}-`)
  const port = await freePort()
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'pm-stop', private: true, type: 'module', scripts: { start: script } }))
  writeFileSync(join(dir, 'app.mjs'), APP)
  writeFileSync(join(dir, 'pool.yaml'), `servers:\n  - name: web\n    listen: 127.0.0.1:${port}\nhandlers:\n  default: ./app.mjs\ndefaults:\n  stopTimeout: 3000\n`)
  prepare(dir)
  const [command, args] = owned(manager, argv)
  const child = track(spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', npm_config_update_notifier: 'false' } }))
  let out = ''
  child.stdout?.setEncoding('utf8').on('data', (c: string) => { out += c })
  child.stderr?.setEncoding('utf8').on('data', (c: string) => { out += c })
  const exited = new Promise<number | null>(resolve => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : 128))))
  let pool: number | undefined
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
    if (pool !== undefined && running(pool)) process.kill(pool, 'SIGKILL')
  })
  const deadline = Date.now() + 20_000
  while (pool === undefined) {
    // One process's line, or the primary's once every worker is up.
    pool = logLines(out).find(l => (l.msg === 'pool started' && l.worker === undefined) || /^pool started in \d+ workers$/.test(String(l.msg)))?.pid as number | undefined
    if (pool !== undefined) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${manager} start did not start the pool:\n${out}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200)
  return { port, pool, manager: child, output: () => out, exited }
}

for (const manager of ['npm', 'pnpm'] as const) {
  const skip = has(manager) ? false : `no ${manager} on this machine`
  test(`SIGTERM to \`${manager} start\` whose script execs the command: the pool drains and exits 0, ${manager} exits 0, nothing is left`, { skip, timeout: 30_000 }, async (t) => {
    const started = await startWith(t, manager, `exec node ${BIN} start --json pool.yaml`)
    started.manager.kill('SIGTERM')
    assert.equal(await started.exited, 0, started.output())
    await ended(started.pool)
    assert.match(started.output(), /"msg":"SIGTERM: draining the pool"/)
    assert.match(started.output(), /"msg":"pool stopped"/)
    await assert.rejects(get(`http://127.0.0.1:${started.port}/`), { code: 'ECONNREFUSED' })
  })

  test(`SIGTERM to \`${manager} start\` whose script does not exec: ${manager} exits at once, and the command, left behind, notices and drains; nothing is left`, { skip, timeout: 30_000 }, async (t) => {
    const started = await startWith(t, manager, `node ${BIN} start --json pool.yaml`)
    started.manager.kill('SIGTERM')
    await started.exited
    await ended(started.pool)
    assert.match(started.output(), /the package manager that ran this command is not there to stop it; draining the pool as SIGTERM would/)
    await assert.rejects(get(`http://127.0.0.1:${started.port}/`), { code: 'ECONNREFUSED' })
  })
}

test('SIGTERM to `npm start` whose script runs the command with --workers 2, without exec: the primary notices, every worker drains, nothing is left', { skip: has('npm') ? false : 'no npm on this machine', timeout: 30_000 }, async (t) => {
  const started = await startWith(t, 'npm', `node ${BIN} start --json --workers 2 pool.yaml`)
  const workers = ((logLines(started.output()).find(l => /^pool started in/.test(String(l.msg)))?.workers ?? []) as Array<{ pid: number }>).map(w => w.pid)
  assert.equal(workers.length, 2)
  started.manager.kill('SIGTERM')
  await started.exited
  await ended(started.pool)
  for (const pid of workers) await ended(pid)
  assert.match(started.output(), /the package manager that ran this command is not there to stop it; draining every worker as SIGTERM would/)
  assert.match(started.output(), /"msg":"every worker stopped; exiting"/)
  await assert.rejects(get(`http://127.0.0.1:${started.port}/`), { code: 'ECONNREFUSED' })
})

test('SIGTERM to `npx fastify-pool start` (npm exec runs the bin under a shell of its own, which dies): the command notices, drains and exits, nothing is left', { skip: has('npx') ? false : 'no npx on this machine', timeout: 30_000 }, async (t) => {
  // npx finds the command in the project's node_modules/.bin, as after `npm install fastify-pool-cli`.
  const started = await startWith(t, 'npm', 'node -e 0', (dir) => {
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true })
    symlinkSync(BIN, join(dir, 'node_modules', '.bin', 'fastify-pool'))
  }, ['exec', '--', 'fastify-pool', 'start', '--json', 'pool.yaml'])
  started.manager.kill('SIGTERM')
  await started.exited
  await ended(started.pool)
  assert.match(started.output(), /the package manager that ran this command is not there to stop it; draining the pool as SIGTERM would/)
  await assert.rejects(get(`http://127.0.0.1:${started.port}/`), { code: 'ECONNREFUSED' })
})

test('the starters (JavaScript and TypeScript), the scaffolded apps, the Kubernetes example and this repository start the command with exec', () => {
  const scripts = ['package.json', 'examples/starter/_package.json', 'examples/starter-ts/_package.json', 'examples/kubernetes/package.json']
    .map(file => [file, (JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as { scripts: { start: string } }).scripts.start])
  for (const [file, start] of scripts) assert.match(start ?? '', /^exec /, `${file}: ${start}`)
})
