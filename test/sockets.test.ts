// The socket seam (PoolOptions.sockets): a pool takes its listening sockets
// from the source it is given and knows nothing of where they came from;
// `fastify-pool/sockets` has what a process layer needs to bind them for
// others and take them back. Real sockets on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPool, type ListenAddress, type SocketSource } from 'fastify-pool'
import { bindSocket, canShareSockets, listeningDescriptors } from 'fastify-pool/sockets'
import { get } from './fixtures/client.ts'
import { ROOT } from './fixtures/cli.ts'

const routes = async (app: { get: (path: string, handler: () => Promise<unknown>) => void }): Promise<void> => {
  app.get('/', async () => ({ ok: true }))
}

test('a listener serves on the socket its source gives (bound elsewhere, not by the pool): restarts keep it, and the source is asked on each start', async (t) => {
  assert.equal(await canShareSockets(), true)
  const bound = await bindSocket({ kind: 'tcp', host: '127.0.0.1', port: 0 })
  assert.ok(bound?.port !== undefined)
  t.after(() => bound.close())
  const asked: string[] = []
  const sockets: SocketSource = {
    take: (address: ListenAddress, bind: string) => {
      asked.push(`${address.kind} ${bind}`)
      return bind === 'systemd:web' ? bound.fd : undefined
    },
    problem: (address) => address.kind === 'systemd' && address.name !== 'web' ? `no socket named ${address.name}` : undefined
  }
  const pool = createPool({ servers: [{ name: 'web', listen: 'systemd:web' }, { name: 'other', listen: '127.0.0.1:0' }], handlers: routes, sockets })
  t.after(() => pool.stop())
  await pool.start()
  assert.deepEqual(asked.sort(), ['systemd systemd:web', 'tcp 127.0.0.1:0'])
  const res = await get(`http://127.0.0.1:${bound.port}/`)
  assert.equal(res.status, 200)
  await pool.restart()
  assert.equal(asked.length, 2, 'a restart keeps the socket: the source is not asked again')
  assert.equal((await get(`http://127.0.0.1:${bound.port}/`)).status, 200)
  // What a successor would be handed: each running listener's descriptor, by bind.
  const handed = listeningDescriptors(pool)
  assert.ok(handed !== undefined)
  assert.deepEqual([...handed.keys()].sort(), ['127.0.0.1:0', 'systemd:web'].sort())
  assert.ok([...handed.values()].every(fd => Number.isInteger(fd) && fd > 2))
})

test('the source says which passed sockets it cannot serve: createPool() refuses them all at once, and without a source a systemd:NAME address is refused with what to do', () => {
  const sockets: SocketSource = { take: () => undefined, problem: (address) => address.kind === 'systemd' ? `no socket named ${address.name}` : undefined }
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: 'systemd:a' }, { name: 'b', listen: 'systemd:b' }], sockets }), (err: Error & { code?: string, errors?: Array<{ path: string, message: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.deepEqual(err.errors?.map(e => `${e.path}: ${e.message}`), ['servers[0].listen: no socket named a', 'servers[1].listen: no socket named b'])
    return true
  })
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: 'systemd:a' }] }), /has no socket source that passes it/)
  assert.throws(() => createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], sockets: { take: 3 } as unknown as SocketSource }), (err: Error & { code?: string, errors?: Array<{ path: string, message: string }> }) => {
    assert.equal(err.code, 'FST_POOL_VALIDATE')
    assert.equal(err.errors?.[0]?.path, 'sockets')
    assert.match(err.errors?.[0]?.message ?? '', /must be a socket source: an object with take\(address, bind\)/)
    return true
  })
})

test('a source that throws refuses the start of that listener only, with its reason; nothing is left listening', async () => {
  const sockets: SocketSource = { take: (_address, bind) => { if (bind === '127.0.0.1:1') throw new Error('not yours'); return undefined } }
  const pool = createPool({ servers: [{ name: 'bad', listen: '127.0.0.1:1' }, { name: 'good', listen: '127.0.0.1:0' }], handlers: routes, sockets })
  await assert.rejects(pool.start(), (err: Error & { errors?: Array<{ name: string, error: Error }> }) => {
    assert.deepEqual(err.errors?.map(f => [f.name, f.error.message]), [['bad', 'not yours']])
    return true
  })
  assert.equal(pool.load('good')?.isRunning, false, 'a failed start leaves nothing running')
})

test('the library knows nothing of node:cluster, systemd\'s variables or the command\'s hand-off: those are the command\'s (fastify-pool-cli/src/inherited.ts)', () => {
  const files = ['listener/server.ts', 'listener/listener.ts', 'listener/serving.ts', 'listener/sockets.ts', 'sockets.ts', 'create.ts', 'index.ts']
  for (const file of files) {
    const text = readFileSync(join(ROOT, 'packages/fastify-pool/src', file), 'utf8')
    assert.doesNotMatch(text, /from 'node:cluster'|env\.LISTEN_FDS|'FASTIFY_POOL_LISTEN_FDS'|process\.env/, file)
  }
  const index = readFileSync(join(ROOT, 'packages/fastify-pool/src/index.ts'), 'utf8')
  assert.doesNotMatch(index, /handoffSockets|shareSocket|systemdSocketNames|HANDOFF_ENV|releaseInherited/)
})
