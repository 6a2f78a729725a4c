// `--json` means only JSON: every failure path of every command, run with
// --json, writes one JSON object per line on stdout and on stderr alike, and
// an error line carries `code` and `message` (and the cause, the field path
// and the line where there is one). Child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { join } from 'node:path'
import { BIN, freePort, run } from './fixtures/cli.ts'
import { command, poolFile, project, started, TOKEN } from './fixtures/operate.ts'
import { statusTable } from '../packages/fastify-pool-cli/src/operate.ts'

interface Run { code: number | null, lines: { stdout: Line[], stderr: Line[] } }
interface Line { level?: unknown, code?: unknown, message?: unknown, msg?: unknown, [key: string]: unknown }

/** Every line of both streams, parsed; fails on one that is not a JSON object. */
function jsonLines (what: string, out: { stdout: string, stderr: string }): { stdout: Line[], stderr: Line[] } {
  const parse = (stream: string, text: string): Line[] => text.split('\n').filter(l => l !== '').map(l => {
    let value: unknown
    try { value = JSON.parse(l) } catch { assert.fail(`${what}: a line on ${stream} is not JSON: ${l}`) }
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), `${what}: a line on ${stream} is not an object: ${l}`)
    return value as Line
  })
  const lines = { stdout: parse('stdout', out.stdout), stderr: parse('stderr', out.stderr) }
  for (const l of [...lines.stdout, ...lines.stderr]) {
    if (l.level !== 'error' && l.level !== 50) continue
    assert.ok(typeof l.code === 'string' && /^FST_/.test(l.code), `${what}: an error line without a code: ${JSON.stringify(l)}`)
    assert.ok(typeof (l.message ?? l.msg) === 'string', `${what}: an error line without a message: ${JSON.stringify(l)}`)
  }
  return lines
}

test('every failure of the commands on a file, with --json, is JSON on both streams', async (t) => {
  const dir = project(t, 'servers:\n  - name: a\n    listen: "127.0.0.1:${PORT"\n  - name: b\n    listen: nowhere\n')
  const runs = await Promise.all([
    command(t, dir, ['validate', '--json']),
    command(t, dir, ['start', '--json']),
    command(t, dir, ['start', '--json', '--workers', '2']),
    command(t, dir, ['start', '--json', '--bogus']),
    command(t, dir, ['frobnicate', '--json']),
    command(t, dir, ['ps', '--json'])
  ])
  const names = ['validate', 'start', 'start --workers', 'usage', 'unknown', 'ps']
  const parsed: Run[] = runs.map((r, i) => ({ code: r.code, lines: jsonLines(names[i] ?? '', r) }))
  const [validate, start, workers, usage, unknown, ps] = parsed as [Run, Run, Run, Run, Run, Run]
  for (const r of [validate, start, workers]) {
    assert.equal(r.code, 1)
    const problems = r.lines.stderr.filter(l => l.code === 'FST_POOL_VALIDATE' && l.path !== undefined)
    assert.deepEqual(problems.map(p => p.path), ['servers[0].listen', 'servers[1].listen'])
    assert.deepEqual([problems[0]!.line, problems[0]!.column], [3, 13], 'the unclosed ${ is shown where it is')
  }
  assert.equal(usage.code, 2)
  assert.equal(usage.lines.stderr[0]?.code, 'FST_POOL_USAGE')
  assert.equal(unknown.code, 2)
  assert.equal(ps.code, 1, 'the file has no control section')
  assert.ok(ps.lines.stderr.length > 0)
})

test('every failure of the commands against a running pool, with --json, is JSON on both streams', async (t) => {
  const admin = await freePort()
  const dir = project(t, poolFile(admin))
  const pool = await started(t, dir)
  const holder = createServer()
  holder.listen(0, '127.0.0.1')
  await once(holder, 'listening')
  t.after(() => new Promise(resolve => holder.close(resolve)))
  const busy = (holder.address() as { port: number }).port
  const cases: Array<[string, string[], Record<string, string | undefined>, number, string]> = [
    ['the answer itself', ['ps', '--json'], { POOL_TOKEN: TOKEN, FASTIFY_POOL_TOKEN: undefined }, 0, ''],
    ['no match', ['restart', 'nothing-*', '--json'], { POOL_TOKEN: TOKEN }, 5, 'FST_POOL_NO_MATCH'],
    ['the control listener', ['stop', 'admin', '--json'], { POOL_TOKEN: TOKEN }, 1, 'FST_POOL_REFUSED'],
    ['a bad token', ['ps', '--json', '--token', 'not-the-right-token-at-all'], { POOL_TOKEN: TOKEN }, 4, 'FST_POOL_UNAUTHORIZED'],
    ['an upgrade to a node that is not there', ['upgrade', '--json', '--node', '/nonexistent/node'], { POOL_TOKEN: TOKEN }, 1, 'FST_POOL_REFUSED'],
    ['an upgrade with a bad timeout', ['upgrade', '--json', '--timeout', 'soon'], { POOL_TOKEN: TOKEN }, 2, 'FST_POOL_USAGE']
  ]
  for (const [what, args, env, code, expected] of cases) {
    const r = await command(t, dir, args, env)
    assert.equal(r.code, code, `${what}: ${r.stderr}`)
    const lines = jsonLines(what, r)
    if (expected !== '') assert.equal(lines.stderr.find(l => l.level === 50)?.code, expected, what)
  }
  // A refused reload: the problems are fields of one error line, said once.
  writeFileSync(join(dir, 'pool.yaml'), `${poolFile(admin)}  - name: extra\n    listen: 127.0.0.1:${busy}\n    handler: public\n`)
  const reload = await command(t, dir, ['reload', '--json'])
  assert.equal(reload.code, 1, reload.stderr)
  const lines = jsonLines('reload', reload)
  assert.equal(lines.stdout.length, 0, 'nothing on stdout for a refusal')
  assert.equal(lines.stderr.length, 1, `one line: ${reload.stderr}`)
  assert.equal(lines.stderr[0]?.code, 'FST_POOL_REFUSED')
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
  const gone = await command(t, dir, ['ps', '--json'])
  assert.equal(gone.code, 3)
  assert.equal(jsonLines('not running', gone).stderr[0]?.code, 'FST_POOL_NOT_RUNNING')
})

test('ps --watch refreshes until SIGINT: one JSON answer per line with --json; tables without colour when stdout is not a terminal', async (t) => {
  const admin = await freePort()
  const dir = project(t, poolFile(admin))
  const pool = await started(t, dir)
  for (const json of [true, false]) {
    const watch = run(t, [BIN, 'ps', '--watch', ...(json ? ['--json'] : [])], { cwd: dir, env: { POOL_TOKEN: TOKEN } })
    await watch.waitFor(out => (json ? out.split('\n').filter(l => l.startsWith('{')).length : (out.match(/^PROCESS/gm) ?? []).length) >= 2)
    watch.proc.kill('SIGINT')
    assert.equal((await watch.exited).code, 0)
    const out = watch.stdout()
    if (json) {
      const answers = out.trim().split('\n').map(l => JSON.parse(l) as { listeners: unknown[] })
      assert.ok(answers.length >= 2 && answers.every(a => a.listeners.length === 3))
    } else {
      assert.ok(!out.includes('\u001b['), 'no escape codes off a terminal')
      assert.ok((out.match(/^NAME\s+STATE/gm) ?? []).length >= 2)
    }
  }
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('on a terminal ps colours the state only, and the columns stay aligned', () => {
  const row = { name: 'a', bind: ':1', expose: undefined, url: 'http://x:1', handler: 'default', running: true, disabled: false, optional: false, uptime: 1000, generation: 1, inflight: 0, upgraded: 0, retiring: [], lastError: undefined, lastStop: undefined, certificate: undefined }
  const plain = statusTable([{ ...row, state: 'running' }, { ...row, name: 'bb', state: 'failed', running: false }])
  const coloured = statusTable([{ ...row, state: 'running' }, { ...row, name: 'bb', state: 'failed', running: false }], true)
  assert.ok(!plain.includes('\u001b['))
  assert.ok(coloured.includes('\u001b[32mrunning'), coloured)
  assert.ok(coloured.includes('\u001b[31mfailed'), coloured)
  // eslint-disable-next-line no-control-regex -- the escapes are what is checked
  assert.equal(coloured.replace(/\u001b\[\d+m/g, ''), plain)
})
