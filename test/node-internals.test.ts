// Node's private fields behind one door (node-internals.ts): on this Node
// every one of them behaves as the drain expects (a canary for new Node
// releases), and FASTIFY_POOL_NODE_INTERNALS=off says so once
// (node-internals-off.test.ts: the conservative paths lose nothing).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { NODE_INTERNALS, nodeInternals, probeNodeInternals } from '../packages/fastify-pool/src/listener/node-internals.ts'
import { ROOT } from './fixtures/cli.ts'
import { tlsPath } from './fixtures/client.ts'
import { owned, track } from './fixtures/owned.ts'

const fallbackRun = process.env.FASTIFY_POOL_NODE_INTERNALS === 'off'

test(`every private field the drain reads behaves as expected on Node ${process.version}`, { skip: fallbackRun && 'FASTIFY_POOL_NODE_INTERNALS=off' }, async () => {
  const warnings: string[] = []
  const failed = await probeNodeInternals((message) => warnings.push(message))
  assert.deepEqual(failed, [], `Node ${process.version} changed ${failed.map(f => NODE_INTERNALS[f].field).join(', ')}: ${warnings.join(' ')}`)
  assert.deepEqual(Object.values(nodeInternals()), Object.keys(NODE_INTERNALS).map(() => true))
})

test('with FASTIFY_POOL_NODE_INTERNALS=off the pool logs one warning naming each field and the Node version', async () => {
  const script = `
    import { createPool } from 'fastify-pool'
    import { pino } from 'pino'
    const lines = []
    const logger = pino({ level: 'warn' }, { write: (line) => lines.push(JSON.parse(line)) })
    const pool = createPool({ logger, servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }] })
    await pool.start()
    await pool.stop()
    process.stdout.write(JSON.stringify(lines))
  `
  const { stdout, stderr } = await new Promise<{ stdout: string, stderr: string }>((resolve, reject) => {
    track(execFile(...owned(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script]), { cwd: ROOT, env: { ...process.env, FASTIFY_POOL_NODE_INTERNALS: 'off' }, timeout: 30_000 }, (err, stdout, stderr) => err === null ? resolve({ stdout, stderr }) : reject(new Error(`${err.message}\n${stderr}`))))
  })
  const lines = JSON.parse(stdout) as Array<{ msg: string, node?: string }>
  const warnings = lines.filter(l => /does not use/.test(l.msg))
  assert.equal(warnings.length, 1, `one warning for the process, not one per listener: ${stdout} ${stderr}`)
  for (const { field } of Object.values(NODE_INTERNALS)) assert.ok(warnings[0]!.msg.includes(field), `names ${field}`)
  assert.equal(warnings[0]!.node, process.version)
})

test('with FASTIFY_POOL_NODE_INTERNALS=off a live change of requestCert is refused with FST_POOL_TLS and nothing changes; new certificates still apply', async () => {
  const script = `
    import { createPool } from 'fastify-pool'
    const dir = ${JSON.stringify(tlsPath(''))}
    const pool = createPool({ servers: [{ name: 'tls', listen: '127.0.0.1:0', tls: { cert: dir + 'server.crt', key: dir + 'server.key' } }] })
    await pool.start()
    const l = pool.load('tls')
    const out = {}
    try { await l.setTls({ requestCert: true, ca: dir + 'ca.crt' }); out.change = 'applied' } catch (err) { out.change = err.code; out.message = err.message }
    out.requestCert = l.config.tls.requestCert ?? false
    try { await l.setTls({ cert: dir + 'server2.crt', key: dir + 'server2.key' }); out.rotate = 'applied' } catch (err) { out.rotate = err.code }
    await pool.stop()
    process.stdout.write(JSON.stringify(out))
  `
  const { stdout } = await new Promise<{ stdout: string, stderr: string }>((resolve, reject) => {
    track(execFile(...owned(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script]), { cwd: ROOT, env: { ...process.env, FASTIFY_POOL_NODE_INTERNALS: 'off' }, timeout: 30_000 }, (err, stdout, stderr) => err === null ? resolve({ stdout, stderr }) : reject(new Error(`${err.message}\n${stderr}`))))
  })
  const out = JSON.parse(stdout) as { change: string, message?: string, requestCert: boolean, rotate: string }
  assert.equal(out.change, 'FST_POOL_TLS')
  assert.match(out.message ?? '', /requestCert or rejectUnauthorized; stop and start the listener/)
  assert.equal(out.requestCert, false)
  assert.equal(out.rotate, 'applied')
})
