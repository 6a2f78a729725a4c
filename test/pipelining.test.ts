// Pipelined HTTP/1.1 requests: a response queued behind another has no socket,
// and Node never emits its 'close' when the client leaves first. The listener
// must not count such requests as in flight forever (a restart would then wait
// for its whole deadline).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPool, type ListenerConfig } from 'fastify-pool'

const certs = join(import.meta.dirname, 'fixtures', 'tls')

for (const secure of [false, true]) {
  test(`pipelined requests of a client that left are no longer in flight (${secure ? 'HTTPS' : 'HTTP'})`, { timeout: 20_000 }, (t) => pipelined(t, secure))
}

async function pipelined (t: { after: (fn: () => unknown) => void }, secure: boolean): Promise<void> {
  let open!: () => void
  const gate = new Promise<void>(resolve => { open = resolve })
  let arrived = 0
  let allArrived!: () => void
  const arrivedAll = new Promise<void>(resolve => { allArrived = resolve })
  const pool = createPool({
    servers: [{
      name: 'api',
      listen: '127.0.0.1:0',
      ...(secure ? { tls: { cert: join(certs, 'server.crt'), key: join(certs, 'server.key') } } : {})
    } satisfies ListenerConfig],
    handlers: async (app) => {
      app.addHook('onRequest', async () => { if (++arrived === 10) allArrived() })
      app.get('/', async (request) => {
        if ((request.query as { n?: string }).n === '0') return 'first'
        await gate
        return 'late'
      })
    }
  })
  t.after(() => pool.stop())
  await pool.start()
  const listener = pool.load('api')
  assert.ok(listener?.server !== undefined)
  // The socket requests run on: the TLS socket over HTTPS.
  const serverSocket = once(listener.server, secure ? 'secureConnection' : 'connection') as Promise<[Socket]>

  const address = listener.address as { port: number }
  const client = secure
    ? connectTls({ port: address.port, host: '127.0.0.1', ca: readFileSync(join(certs, 'ca.crt')), servername: 'localhost' })
    : connect(address.port, '127.0.0.1')
  await once(client, secure ? 'secureConnect' : 'connect')
  let wire = ''
  for (let n = 0; n < 10; n++) wire += `GET /?n=${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`
  client.write(wire)
  const [socket] = await serverSocket
  await Promise.all([once(client, 'data'), arrivedAll])
  assert.equal(listener.status.inflight, 9, 'nine requests wait behind the gate')

  const closed = once(socket, 'close')
  client.destroy()
  await closed
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(listener.status.inflight, 0, 'the queued responses left with their connection')

  open()
  // With a leak this restart would wait for its whole (long) deadline.
  await listener.restart({ timeout: 60_000 })
  assert.equal(listener.status.generation, 2)
}
