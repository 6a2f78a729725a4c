// A pool started in a terminal is the terminal's job: an upgrade would hand
// it to a process that is not (the shell takes the terminal back when the old
// process exits, Ctrl-C no longer reaches the new one, its log goes to a
// terminal that may be gone). So an upgrade is refused there, with what to do
// instead; the pool serves on, and Ctrl-C still drains it. Under a real
// pseudo-terminal (util-linux's `script`), on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, freePort, get, logLines, run, tempDir } from './fixtures/cli.ts'
import { owned, track } from './fixtures/owned.ts'

const NO_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0 ? false : 'no script (util-linux) on this machine'

test('in a terminal: `fastify-pool upgrade` and SIGUSR2 are refused with advice, the pool serves on unchanged, and Ctrl-C drains it (exit 0)', { skip: NO_SCRIPT, timeout: 30_000 }, async (t) => {
  const dir = tempDir(t, 'fastify-pool-tty-')
  const port = await freePort()
  const admin = await freePort()
  writeFileSync(join(dir, 'app.mjs'), 'export default async function (app) { app.get(\'/\', async () => ({ pid: process.pid })) }\n')
  writeFileSync(join(dir, 'pool.yaml'), `servers:\n  - name: web\n    listen: 127.0.0.1:${port}\n  - name: admin\n    listen: 127.0.0.1:${admin}\nhandlers:\n  default: ./app.mjs\ncontrol:\n  listener: admin\n`)
  // script runs the command on a pseudo-terminal of its own: stdin, stdout and stderr are that terminal, and what is written to script's stdin is typed there.
  // It runs it through $SHELL -c; `exec` makes the pool the terminal's job itself, whatever the shell (dash, /bin/sh when SHELL is unset, keeps a parent that dies of the Ctrl-C too).
  const [command, args] = owned('script', ['-qfec', `exec ${process.execPath} ${BIN} start --json pool.yaml`, '/dev/null'])
  const terminal = track(spawn(command, args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } }))
  t.after(() => { if (terminal.exitCode === null) terminal.kill('SIGKILL') })
  let screen = ''
  const changed = new Set<() => void>()
  terminal.stdout?.setEncoding('utf8').on('data', (c: string) => { screen += c; for (const w of changed) w() })
  const exited = new Promise<number | null>(resolve => terminal.once('exit', code => resolve(code)))
  const shows = (test: (s: string) => boolean): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => { if (test(screen)) { changed.delete(check); clearTimeout(timer); resolve() } }
    const timer = setTimeout(() => { changed.delete(check); reject(new Error(`not on the terminal within 15 s:\n${screen}`)) }, 15_000)
    changed.add(check)
    check()
  })
  await shows(s => logLines(s).some(l => l.msg === 'pool started'))
  const pid = logLines(screen).find(l => l.msg === 'pool started')?.pid

  const upgrade = run(t, [BIN, 'upgrade', 'pool.yaml'], { cwd: dir })
  assert.equal((await upgrade.exited).code, 1, upgrade.stdout() + upgrade.stderr())
  assert.match(upgrade.stderr(), /^pool\.yaml: upgrade refused, the running process serves on unchanged: this pool runs in a terminal, .*reload instead \(fastify-pool reload, SIGHUP or --watch\); to upgrade, run it under a supervisor/m)
  process.kill(pid as number, 'SIGUSR2')
  await shows(s => logLines(s).filter(l => /^upgrade refused: this pool runs in a terminal/.test(String(l.msg))).length === 2)
  assert.equal((JSON.parse((await get(`http://127.0.0.1:${port}/`)).body) as { pid: number }).pid, pid, 'the same process serves')

  // Ctrl-C, typed on the terminal: the line discipline sends SIGINT to its foreground job, the pool.
  terminal.stdin?.write('\x03')
  assert.equal(await exited, 0, screen)
  // The terminal echoes the Ctrl-C (^C) in front of the next line.
  assert.match(screen, /"msg":"SIGINT: draining the pool"/)
  assert.match(screen, /"msg":"pool stopped"/)
  await assert.rejects(get(`http://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' })
})
