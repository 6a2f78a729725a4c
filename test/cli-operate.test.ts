// Operating a running pool from the command line: `fastify-pool ps`,
// `restart`, `stop` and `reload` against a `fastify-pool start` of the same
// file, `--watch` and `--env-file`. Child processes on real sockets.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TLS, freePort, get, tempDir } from './fixtures/cli.ts'
import { ROUTE, TOKEN, command, poolFile, project, started } from './fixtures/operate.ts'
import { createPool } from 'fastify-pool'
import { statusTable } from '../packages/fastify-pool-cli/src/operate.ts'

test('ps prints the table of the running pool; restart \'pub*\' gives exactly those listeners a new generation', async (t) => {
  const port = await freePort()
  const dir = project(t, poolFile(port))
  const pool = await started(t, dir)

  const ps = await command(t, dir, ['ps'])
  assert.equal(ps.code, 0, ps.stderr)
  const [table, processes] = ps.stdout.trim().split('\n\n')
  const lines = (table ?? '').split('\n')
  assert.match(lines[0] ?? '', /^NAME\s+STATE\s+URL\s+GEN\s+UPTIME\s+INFLIGHT\s+UPGRADED\s+SHED\s+CERT EXPIRES\s+LAST ERROR$/)
  assert.match(processes ?? '', /^PROCESS\s+PID\s+NODE.*\npool\s+\d+\s+v\d+\.\d+\.\d+\s/)
  assert.deepEqual(lines.slice(1).map(l => l.split(/\s+/).slice(0, 2)), [['public-a', 'running'], ['public-b', 'running'], ['admin', 'running']])

  const restart = await command(t, dir, ['restart', 'pub*'])
  assert.equal(restart.code, 0, restart.stderr)
  assert.match(restart.stdout, /^public-a \(127\.0\.0\.1:0\): running, generation 2$/m)
  assert.match(restart.stdout, /^public-b \(127\.0\.0\.1:0\): running, generation 2$/m)
  const json = await command(t, dir, ['ps', '--json', '-c', 'pool.yaml'])
  const generations = Object.fromEntries((JSON.parse(json.stdout) as { listeners: Array<{ name: string, generation: number }> }).listeners.map(l => [l.name, l.generation]))
  assert.deepEqual(generations, { 'public-a': 2, 'public-b': 2, admin: 1 })

  const stop = await command(t, dir, ['stop', 'public-b'])
  assert.equal(stop.code, 0, stop.stderr)
  assert.match(stop.stdout, /^public-b \(127\.0\.0\.1:0\): stopped$/m)
  assert.equal((await command(t, dir, ['restart', 'nothing-*'])).code, 5, 'no listener matches')
  assert.equal((await command(t, dir, ['stop'])).code, 2, 'stop needs a glob')
  for (const args of [['stop', 'admin'], ['stop', '*']]) {
    const refused = await command(t, dir, args)
    assert.equal(refused.code, 1, `${args.join(' ')} is refused: ${refused.stderr}`)
    assert.match(refused.stderr, /listener "admin" serves this control API.*fastify-pool stop --force/)
  }
  assert.equal((await command(t, dir, ['ps'])).code, 0, 'the control listener still answers')

  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('clear errors: nothing running there (exit 3), a wrong or missing token (exit 4), no control section (exit 1)', async (t) => {
  const port = await freePort()
  const dir = project(t, poolFile(port))
  const nothing = await command(t, dir, ['ps'])
  assert.equal(nothing.code, 3)
  assert.match(nothing.stderr, new RegExp(`pool\\.yaml: no pool is running at http://127\\.0\\.0\\.1:${port}/pool \\(ECONNREFUSED\\)`))

  const pool = await started(t, dir)
  const wrong = await command(t, dir, ['ps', '--token', 'not-the-right-token-at-all'])
  assert.equal(wrong.code, 4)
  assert.match(wrong.stderr, /refused the token/)
  const fromEnv = await command(t, dir, ['ps'], { POOL_TOKEN: 'not-the-right-token-at-all' })
  assert.equal(fromEnv.code, 4)
  assert.equal((await command(t, dir, ['ps'], { POOL_TOKEN: 'x'.repeat(20), FASTIFY_POOL_TOKEN: TOKEN })).code, 0, 'FASTIFY_POOL_TOKEN overrides the file')
  pool.proc.kill('SIGTERM')
  await pool.exited

  const bare = project(t, poolFile(port, ''))
  const none = await command(t, bare, ['ps'])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /has no control section/)
})

test('fastify-pool reload applies the edited file; a broken file is refused and the pool keeps serving', async (t) => {
  const port = await freePort()
  const dir = project(t, poolFile(port), { 'routes/v2.js': ROUTE('v2') })
  const pool = await started(t, dir)
  writeFileSync(join(dir, 'pool.yaml'), poolFile(port).replace('public: ./routes/public.js', 'public: ./routes/v2.js'))
  const reload = await command(t, dir, ['reload'])
  assert.equal(reload.code, 0, reload.stderr)
  // The control listener itself changes handler too: the reload that the control API runs reconfigures it and still answers.
  assert.match(reload.stdout, /^reloaded: added -; removed -; changed public-a, public-b, admin; moved -; unchanged -$/m)
  const status = JSON.parse((await command(t, dir, ['ps', '--json'])).stdout) as { listeners: Array<{ name: string, url: string }> }
  const a = status.listeners.find(l => l.name === 'public-a')
  assert.equal((await get(`${a?.url ?? ''}/`)).body, 'v2')
  await pool.waitFor(out => /"msg":"configuration reloaded"/.test(out))

  writeFileSync(join(dir, 'pool.yaml'), `${poolFile(port)}  - name: broken\n    listen: nowhere\n  - name: 3\n    listen: 127.0.0.1:0\n`)
  const refused = await command(t, dir, ['reload'])
  assert.equal(refused.code, 1)
  // Each problem once: a heading, then one line per problem.
  const lines = refused.stderr.trim().split('\n')
  const count = Number(/^pool\.yaml: reload refused, still serving the previous configuration: the file is invalid \((\d+) problems\):$/.exec(lines[0] ?? '')?.[1])
  assert.ok(count >= 2, refused.stderr)
  assert.equal(lines.length, 1 + count, refused.stderr)
  assert.equal(lines.filter(l => /nowhere/.test(l)).length, 1, refused.stderr)
  assert.equal(lines.filter(l => /servers\[4\]\.name: /.test(l)).length, 1, refused.stderr)
  assert.equal((await get(`${a?.url ?? ''}/`)).body, 'v2')
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)
})

test('ps reaches a control listener on a unix socket, and one over HTTPS on loopback', async (t) => {
  const dir = tempDir(t, 'fastify-pool-operate-')
  writeFileSync(join(dir, 'pool.yaml'), [
    'control:',
    '  listener: admin',
    'servers:',
    '  - name: web',
    '    listen: 127.0.0.1:0',
    '  - name: admin',
    `    listen: unix:${join(dir, 'admin.sock')}`,
    ''
  ].join('\n'))
  const pool = await started(t, dir)
  const ps = await command(t, dir, ['ps', '--json'])
  assert.equal(ps.code, 0, ps.stderr)
  assert.deepEqual((JSON.parse(ps.stdout) as { listeners: Array<{ name: string }> }).listeners.map(l => l.name), ['web', 'admin'])
  pool.proc.kill('SIGTERM')
  assert.equal((await pool.exited).code, 0)

  const secure = tempDir(t, 'fastify-pool-operate-')
  const port = await freePort()
  writeFileSync(join(secure, 'pool.yaml'), [
    'control:',
    '  listener: admin',
    'servers:',
    '  - name: admin',
    `    listen: 127.0.0.1:${port}`,
    '    tls:',
    `      cert: ${join(TLS, 'server.crt')}`,
    `      key: ${join(TLS, 'server.key')}`,
    ''
  ].join('\n'))
  const tlsPool = await started(t, secure)
  const tlsPs = await command(t, secure, ['ps'])
  assert.equal(tlsPs.code, 0, tlsPs.stderr)
  assert.match(tlsPs.stdout, new RegExp(`^admin\\s+running\\s+https://127\\.0\\.0\\.1:${port}`, 'm'))
  tlsPool.proc.kill('SIGTERM')
  assert.equal((await tlsPool.exited).code, 0)
})

test('ps shows no generation for a stopped listener ("-", not 0), and the one serving for a running one', async () => {
  const pool = createPool({ servers: [{ name: 'up', listen: '127.0.0.1:0' }, { name: 'down', listen: '127.0.0.1:0' }] })
  await pool.start()
  await pool.restart()
  await pool.load('down')?.stop()
  const rows = statusTable(pool.status()).trim().split('\n').map(r => r.split(/\s{2,}/))
  const gen = rows[0]?.indexOf('GEN') ?? -1
  assert.deepEqual(rows.slice(1).map(r => [r[0], r[1], r[gen]]), [['up', 'running', '2'], ['down', 'stopped', '-']])
  await pool.stop()
})
