// Starting, stopping and restarting a pool on real sockets (127.0.0.1, port 0)
// with real HTTP requests: parallel start, rollback, optional listeners, every
// address form, TLS and mTLS, and aggregated failures.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { createPool, type Listener, type ListenerFailure } from 'fastify-pool'
import { get, tls, tlsPath, tryConnect, within } from './fixtures/client.ts'

type Aggregate = Error & { code: string, errors: ListenerFailure[] }

const hello = async (app: FastifyInstance): Promise<void> => {
  app.get('/', async () => 'hello')
}

const portOf = (l: Listener | undefined): number => {
  const a = l?.address
  assert.ok(typeof a === 'object' && a !== null, `${l?.name} has a TCP address`)
  return a.port
}

/** Occupy a port on 127.0.0.1 with a plain net server. */
async function occupy (): Promise<Server & { port: number }> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return Object.assign(server, { port: (server.address() as { port: number }).port })
}

test('a pool starts, serves and stops', async () => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: hello })
  await p.start()
  const res = await fetch(`${p.load('a')?.url}/`)
  assert.equal(await res.text(), 'hello')
  await p.stop()
  assert.equal(p.isRunning(), false)
})

test('start is parallel: every listener\'s plugins begin loading before any finishes', async (t) => {
  const count = 4
  let begun = 0
  let release!: () => void
  const barrier = new Promise<void>(resolve => { release = resolve })
  const p = createPool({
    servers: Array.from({ length: count }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0' })),
    // A serial start would wait forever on the first listener's plugin.
    handlers: async (app: FastifyInstance) => {
      if (++begun === count) release()
      await barrier
      app.get('/', async () => 'ok')
    }
  })
  t.after(async () => { release(); await p.stop() })
  await within(5000, p.start(), 'a parallel start')
  assert.equal(begun, count)
  for (const l of p) assert.equal((await get(`${l.url}/`)).body, 'ok')
})

test('start resolves once every socket is truly listening; stop once it is truly closed', async () => {
  const p = createPool({ servers: Array.from({ length: 3 }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0' })), handlers: hello })
  await p.start()
  // No wait of any kind between start() and the requests.
  const replies = await Promise.all([...p].map(l => get(`${l.url}/`)))
  assert.deepEqual(replies.map(r => r.status), [200, 200, 200])
  const ports = [...p].map(portOf)
  const reports = await p.stop()
  assert.deepEqual(reports.map(r => r.name), ['l0', 'l1', 'l2'])
  for (const port of ports) assert.equal(await tryConnect(port), 'ECONNREFUSED')
  assert.deepEqual([...p].map(l => [l.state, l.url, l.address]), [['stopped', undefined, undefined], ['stopped', undefined, undefined], ['stopped', undefined, undefined]])
})

test('start skips disabled listeners and leaves running ones alone', async (t) => {
  const p = createPool({
    servers: [{ name: 'on', listen: '127.0.0.1:0' }, { name: 'off', listen: '127.0.0.1:0', disabled: true }],
    handlers: hello
  })
  t.after(() => p.stop())
  await p.start()
  const on = p.load('on') as Listener
  const off = p.load('off') as Listener
  assert.equal(on.isRunning, true)
  assert.equal(off.isRunning, false)
  assert.equal(off.state, 'stopped')

  const server = on.server
  const port = portOf(on)
  const late = p.storeNew({ name: 'late', listen: '127.0.0.1:0' })
  await p.start()
  assert.equal(late.isRunning, true, 'the new listener started')
  assert.equal(on.server, server, 'the running one kept its server')
  assert.equal(portOf(on), port)
  assert.equal(on.status.generation, 1, 'and its Fastify instance')

  await p.restart()
  assert.equal(off.isRunning, false, 'restart skips disabled listeners too')
  await assert.rejects(off.start(), (err: Aggregate) => {
    assert.equal(err.code, 'FST_POOL_START')
    assert.match(err.errors[0]?.error.message ?? '', /disabled/)
    return true
  })
})

test('a port in use fails start with FST_POOL_START and rolls back the listeners this call started', async (t) => {
  const busy = await occupy()
  t.after(() => busy.close())
  const bound: number[] = []
  const p = createPool({
    servers: [
      { name: 'first', listen: '127.0.0.1:0' },
      { name: 'busy', listen: `127.0.0.1:${busy.port}` },
      { name: 'third', listen: '127.0.0.1:0' }
    ],
    handlers: async (app: FastifyInstance) => {
      app.server.once('listening', () => bound.push((app.server.address() as { port: number }).port))
      app.get('/', async () => 'hello')
    }
  })
  t.after(() => p.stop())
  await assert.rejects(p.start(), (err: Aggregate) => {
    assert.equal(err.code, 'FST_POOL_START')
    assert.equal(err.errors.length, 1)
    assert.equal(err.errors[0]?.name, 'busy')
    assert.equal(err.errors[0]?.bind, `127.0.0.1:${busy.port}`)
    assert.equal((err.errors[0]?.error as NodeJS.ErrnoException).code, 'EADDRINUSE')
    assert.match(err.message, new RegExp(`busy \\(127.0.0.1:${busy.port}\\): .*EADDRINUSE`))
    assert.equal(err.cause, err.errors[0]?.error, 'a single failure is also the cause')
    return true
  })
  assert.equal(bound.length, 2, 'the other two had really bound their ports')
  for (const port of bound) assert.equal(await tryConnect(port), 'ECONNREFUSED', `port ${port} was closed again`)
  assert.equal(p.isRunning(), false)
  assert.equal(p.load('busy')?.state, 'failed')
  assert.match(p.load('busy')?.status.lastError ?? '', /EADDRINUSE/)

  // A listener that was already running before the failing call is not rolled back.
  const first = p.load('first') as Listener
  await first.start()
  await assert.rejects(p.start(), { code: 'FST_POOL_START' })
  assert.equal(first.isRunning, true)
  assert.equal((await get(`${first.url}/`)).body, 'hello')
})

test('every failed listener is named in one FST_POOL_START', async (t) => {
  const a = await occupy()
  const b = await occupy()
  t.after(() => { a.close(); b.close() })
  const p = createPool({ servers: [{ name: 'a', listen: `127.0.0.1:${a.port}` }, { name: 'b', listen: `127.0.0.1:${b.port}` }, { name: 'ok', listen: '127.0.0.1:0' }] })
  await assert.rejects(p.start(), (err: Aggregate) => {
    assert.deepEqual(err.errors.map(e => [e.name, (e.error as NodeJS.ErrnoException).code]).sort(), [['a', 'EADDRINUSE'], ['b', 'EADDRINUSE']])
    assert.equal(err.cause, undefined, 'several failures: no single cause')
    return true
  })
  assert.equal(p.isRunning(), false)
})

test('an optional listener may fail: start succeeds, the failure is logged and kept in its status', async (t) => {
  const busy = await occupy()
  t.after(() => busy.close())
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  const p = createPool({
    logger: pino({ level: 'warn' }, stream),
    servers: [{ name: 'main', listen: '127.0.0.1:0' }, { name: 'extra', listen: `127.0.0.1:${busy.port}`, optional: true }],
    handlers: hello
  })
  t.after(() => p.stop())
  await p.start()
  assert.equal(p.load('main')?.isRunning, true)
  const status = p.load('extra')?.status
  assert.equal(status?.state, 'failed')
  assert.equal(status?.running, false)
  assert.equal(status?.optional, true)
  assert.match(status?.lastError ?? '', /EADDRINUSE/)
  const logged = lines.find(l => l.msg === 'optional listener failed to start')
  assert.equal(logged?.listener, 'extra')
  assert.equal(logged?.level, 40)

  // Once the port is free, the next start() picks it up.
  await new Promise(resolve => busy.close(resolve))
  await p.start()
  assert.equal(p.load('extra')?.isRunning, true)
  assert.equal(p.load('extra')?.status.lastError, undefined)
})

test('a required and an optional failure together: the start fails and names both', async (t) => {
  const a = await occupy()
  const b = await occupy()
  t.after(() => { a.close(); b.close() })
  const p = createPool({ servers: [{ name: 'req', listen: `127.0.0.1:${a.port}` }, { name: 'opt', listen: `127.0.0.1:${b.port}`, optional: true }] })
  await assert.rejects(p.start(), (err: Aggregate) => {
    assert.deepEqual(err.errors.map(e => e.name).sort(), ['opt', 'req'])
    return true
  })
})

test('a certificate that became unreadable fails start with its cause', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  copyFileSync(tlsPath('server.crt'), join(dir, 'server.crt'))
  const p = createPool({ baseDir: dir, servers: [{ name: 'tls', listen: '127.0.0.1:0', tls: { cert: 'server.crt', key: tlsPath('server.key') } }, { name: 'plain', listen: '127.0.0.1:0' }] })
  rmSync(join(dir, 'server.crt'))
  await assert.rejects(p.start(), (err: Aggregate) => {
    assert.equal(err.code, 'FST_POOL_START')
    assert.deepEqual(err.errors.map(e => e.name), ['tls'])
    assert.match(err.errors[0]?.error.message ?? '', /tls.cert: cert file not found/)
    return true
  })
  assert.equal(p.isRunning(), false)
})

test('IPv6 [::1]:0 and localhost:0 report their real address and URL, and answer', async (t) => {
  const p = createPool({ servers: [{ name: 'v6', listen: '[::1]:0' }, { name: 'lh', listen: 'localhost:0' }], handlers: hello })
  t.after(() => p.stop())
  await p.start()
  const v6 = p.load('v6') as Listener
  assert.deepEqual(v6.address, { address: '::1', family: 'IPv6', port: portOf(v6) })
  assert.equal(v6.url, `http://[::1]:${portOf(v6)}`)
  assert.equal(v6.expose, v6.url, 'a port-0 listener exposes its real URL')
  assert.equal(v6.bind, '[::1]:0', 'the bind stays as configured')
  assert.equal((await get(`${v6.url}/`)).body, 'hello')

  const lh = p.load('lh') as Listener
  // localhost binds the first address the OS resolves it to (127.0.0.1 here).
  assert.equal(typeof lh.address === 'object' && lh.address?.address, '127.0.0.1')
  assert.equal(lh.url, `http://localhost:${portOf(lh)}`)
  assert.equal((await get(`${lh.url}/`)).body, 'hello')
  assert.equal((await fetch(`http://127.0.0.1:${portOf(lh)}/`).then(r => r.text())), 'hello')
})

test(':0 listens on all interfaces', async (t) => {
  const p = createPool({ servers: [{ name: 'all', listen: ':0' }, { name: 'num', listen: 0 }], handlers: hello })
  t.after(() => p.stop())
  await p.start()
  for (const l of p) {
    const port = portOf(l)
    assert.ok(['::', '0.0.0.0'].includes((l.address as { address: string }).address))
    assert.equal(l.url, `http://localhost:${port}`)
    assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'hello')
    if ((l.address as { family: string }).family === 'IPv6') assert.equal((await get(`http://[::1]:${port}/`)).body, 'hello', 'dual stack')
  }
})

test('a unix socket listener answers over its socket path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const p = createPool({ baseDir: dir, servers: [{ name: 'sock', listen: 'unix:pool.sock' }], handlers: hello })
  t.after(() => p.stop())
  await p.start()
  const l = p.load('sock') as Listener
  const path = join(dir, 'pool.sock')
  assert.equal(l.bind, `unix:${path}`)
  assert.equal(l.address, path)
  assert.equal(l.url, undefined)
  assert.equal(p.load(`unix:${path}`), l)
  const reply = await get('http://localhost/', { socketPath: path })
  assert.equal(reply.body, 'hello')
  await p.stop()
  assert.equal(existsSync(path), false, 'the socket file is removed on stop')
})

test('an HTTPS listener with the fixture certificates answers clients that trust the CA', async (t) => {
  const p = createPool({ servers: [{ name: 'secure', listen: '127.0.0.1:0', tls: { cert: tlsPath('server.crt'), key: tlsPath('server.key') } }], handlers: hello })
  t.after(() => p.stop())
  await p.start()
  const l = p.load('secure') as Listener
  assert.equal(l.url, `https://127.0.0.1:${portOf(l)}`)
  const reply = await get(`${l.url}/`, { ca: tls('ca.crt') })
  assert.equal(reply.body, 'hello')
  await assert.rejects(get(`${l.url}/`), /unable to verify the first certificate|unable to get local issuer|self-signed/, 'a client that does not trust the CA refuses it')
  await assert.rejects(get(`http://127.0.0.1:${portOf(l)}/`), 'plain HTTP is not served')
})

test('mTLS: requestCert accepts a client certificate signed by the CA and refuses a client without one', async (t) => {
  const p = createPool({
    defaults: { tls: { cert: tlsPath('server.crt'), key: tlsPath('server.key') } },
    servers: [{ name: 'mtls', listen: '127.0.0.1:0', tls: { ca: tlsPath('ca.crt'), requestCert: true } }],
    handlers: async (app: FastifyInstance) => {
      app.get('/', async (request) => {
        const socket = request.raw.socket as import('node:tls').TLSSocket
        return socket.getPeerCertificate().subject?.CN
      })
    }
  })
  t.after(() => p.stop())
  await p.start()
  const url = `${p.load('mtls')?.url}/`
  const reply = await get(url, { ca: tls('ca.crt'), cert: tls('client.crt'), key: tls('client.key') })
  assert.equal(reply.status, 200)
  assert.equal(reply.body, 'test client')
  await assert.rejects(get(url, { ca: tls('ca.crt') }), 'no client certificate: refused')
  await assert.rejects(get(url, { ca: tls('ca.crt'), cert: tls('server2.crt'), key: tls('server2.key') }).then(r => {
    // server2 is signed by the same CA, so it is accepted: prove the check by its subject.
    assert.equal(r.body, 'localhost (server2)')
    throw new Error('accepted')
  }), /accepted/)
})

test('isRunning() is true while any listener runs; uptime() is the longest', async (t) => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }] })
  t.after(() => p.stop())
  assert.equal(p.isRunning(), false)
  assert.equal(p.uptime(), 0)
  await p.load('a')?.start()
  await sleep(40)
  await p.load('b')?.start()
  assert.equal(p.isRunning(), true)
  const up = p.uptime()
  assert.ok(up >= 40, `uptime ${up} counts from a's start`)
  assert.ok((p.load('b')?.uptime ?? 0) < up)
  await p.load('a')?.stop()
  assert.equal(p.isRunning(), true, 'b still runs')
  assert.ok(p.uptime() < up, 'now b is the longest running')
  await p.stop()
  assert.equal(p.isRunning(), false)
  assert.equal(p.uptime(), 0)
})

test('many port-0 listeners in one pool', async (t) => {
  const count = 20
  const p = createPool({ servers: Array.from({ length: count }, (_, i) => ({ name: `l${i}`, listen: '127.0.0.1:0' })), handlers: hello })
  t.after(() => p.stop())
  assert.equal(p.size, count)
  await p.start()
  const ports = new Set([...p].map(portOf))
  assert.equal(ports.size, count, 'each its own port')
  const replies = await Promise.all([...p].map(l => get(`${l.url}/`)))
  assert.ok(replies.every(r => r.body === 'hello'))
  for (const l of p) assert.equal(p.load(`127.0.0.1:${portOf(l)}`), l)
  await p.stop()
  assert.equal(p.isRunning(), false)
})

test('restart swaps each listener\'s Fastify instance on the same socket; a stopped pool is started', async (t) => {
  let version = 0
  const p = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }],
    handlers: async (app: FastifyInstance) => { const v = ++version; app.get('/', async () => `v${v}`) }
  })
  t.after(() => p.stop())
  await p.restart()
  assert.equal(p.isRunning(), true)
  const ports = [...p].map(portOf)
  const before = await Promise.all([...p].map(l => get(`${l.url}/`).then(r => r.body)))
  await p.restart()
  assert.deepEqual([...p].map(portOf), ports)
  const after = await Promise.all([...p].map(l => get(`${l.url}/`).then(r => r.body)))
  assert.notDeepEqual(after, before)
  assert.deepEqual([...p].map(l => l.status.generation), [2, 2])
})

test('stop() aggregates failures in FST_POOL_STOP and still stops every listener', async (t) => {
  const p = createPool({
    servers: [{ name: 'good', listen: '127.0.0.1:0' }, { name: 'bad', listen: '127.0.0.1:0', handler: 'bad' }, { name: 'bad2', listen: '127.0.0.1:0', handler: 'bad' }],
    handlers: {
      default: hello,
      bad: async (app: FastifyInstance) => {
        app.addHook('onClose', async () => { throw new Error('onClose failed') })
      }
    }
  })
  t.after(() => p.stop().catch(() => {}))
  await p.start()
  const ports = [...p].map(portOf)
  await assert.rejects(p.stop(), (err: Aggregate) => {
    assert.equal(err.code, 'FST_POOL_STOP')
    assert.deepEqual(err.errors.map(e => [e.name, e.bind, e.error.message]).sort(), [
      ['bad', '127.0.0.1:0', 'onClose failed'],
      ['bad2', '127.0.0.1:0', 'onClose failed']
    ])
    assert.match(err.message, /bad \(127.0.0.1:0\): onClose failed; bad2 \(127.0.0.1:0\): onClose failed/)
    return true
  })
  assert.equal(p.isRunning(), false)
  for (const port of ports) assert.equal(await tryConnect(port), 'ECONNREFUSED')
})

test('restart() aggregates failures in FST_POOL_RESTART; the failed listener keeps serving its old generation', async (t) => {
  let loads = 0
  const p = createPool({
    servers: [{ name: 'good', listen: '127.0.0.1:0' }, { name: 'flaky', listen: '127.0.0.1:0', handler: 'flaky' }],
    handlers: {
      default: hello,
      flaky: async (app: FastifyInstance) => {
        if (++loads > 1) throw new Error('plugin failed on reload')
        app.get('/', async () => 'first generation')
      }
    }
  })
  t.after(() => p.stop())
  await p.start()
  await assert.rejects(p.restart(), (err: Aggregate) => {
    assert.equal(err.code, 'FST_POOL_RESTART')
    assert.deepEqual(err.errors.map(e => [e.name, e.bind, e.error.message]), [['flaky', '127.0.0.1:0', 'plugin failed on reload']])
    return true
  })
  const flaky = p.load('flaky') as Listener
  assert.equal(flaky.isRunning, true)
  assert.equal(flaky.status.generation, 1)
  assert.equal((await get(`${flaky.url}/`)).body, 'first generation')
  assert.equal(p.load('good')?.status.generation, 2, 'the others restarted')
})

test('a listener starts, restarts and stops on its own', async (t) => {
  const p = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }], handlers: hello })
  t.after(() => p.stop())
  const a = p.load('a') as Listener
  await a.start()
  assert.equal(a.isRunning, true)
  assert.equal(p.load('b')?.isRunning, false)
  assert.equal(a.app?.server, a.server, 'app is the Fastify instance on the listener\'s server')
  await a.restart()
  assert.equal(a.status.generation, 2)
  const report = await a.stop()
  assert.equal(report?.name, 'a')
  assert.equal(report?.cut, 0)
  assert.equal(a.app, undefined)
  await a.stop()
  assert.equal(a.state, 'stopped', 'stopping a stopped listener does nothing')
})
