// A chat room: every message is sent to everyone connected to the same
// generation, prefixed with the generation that serves it. The preClose
// hook is where a pool's restart or stop reaches the clients: it reads
// `app.poolClosing` to tell them why, so that a client told 1012 reconnects
// after a short random delay and one told 1001 goes elsewhere (RFC 6455 §7.4.1).
import websocket from '@fastify/websocket'

let builds = 0

/** @param {import('fastify').FastifyInstance} app */
export default async function chat (app) {
  const generation = ++builds
  await app.register(websocket, {
    preClose (done) {
      const closing = this.poolClosing
      for (const client of this.websocketServer.clients) {
        client.close(closing?.code ?? 1001, closing?.reason ?? 'going away')
      }
      done()
    }
  })
  app.get('/chat', { websocket: true }, (socket) => {
    socket.on('message', (data) => {
      for (const client of app.websocketServer.clients) client.send(`${generation}: ${String(data)}`)
    })
  })
  app.get('/', async () => ({ generation }))
}
