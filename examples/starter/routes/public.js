// The public API, served by the "public" and "secure" listeners.

/** @param {import('fastify').FastifyInstance} app */
export default async function publicRoutes (app) {
  app.get('/', async () => ({ hello: 'world' }))

  app.get('/items/:id', {
    schema: {
      params: {
        type: 'object',
        properties: { id: { type: 'integer', minimum: 1 } },
        required: ['id']
      }
    }
  }, async (request) => {
    const { id } = /** @type {{ id: number }} */ (request.params)
    return { id, name: `item ${id}` }
  })
}
