// Served on every port: says which scheme and TLS version the request came over.

/** @param {import('fastify').FastifyInstance} app */
export default async function routes (app) {
  app.get('/', async (request) => {
    const socket = /** @type {import('node:tls').TLSSocket} */ (request.raw.socket)
    return { protocol: request.protocol, tls: typeof socket.getProtocol === 'function' ? socket.getProtocol() : null }
  })
}
