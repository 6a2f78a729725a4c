// Pipelined HTTP/1.1 requests: a response queued behind another has no socket,
// and Node never emits its 'close' when the client leaves first. The listener
// must not count such requests as in flight forever (a restart would then wait
// for its whole deadline).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { createPool } from 'fastify-pool'

test('pipelined requests of a client that left are no longer in flight', { timeout: 20_000 }, async (t) => {
  let open!: () => void
  const gate = new Promise<void>(resolve => { open = resolve })
  let arrived = 0
  let allArrived!: () => void
  const arrivedAll = new Promise<void>(resolve => { allArrived = resolve })
  const pool = createPool({
    servers: [{ name: 'api', listen: '127.0.0.1:0' }],
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
  const serverSocket = once(listener.server, 'connection') as Promise<[Socket]>

  const address = listener.address as { port: number }
  const client = connect(address.port, '127.0.0.1')
  await once(client, 'connect')
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
})
