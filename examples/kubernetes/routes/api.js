// The API the pod serves on its public listener.
/** @param {import('fastify').FastifyInstance} app */
export default async function api (app) {
  app.get('/', async () => ({ hello: 'kubernetes' }))
  app.get('/items/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } }
  }, async (request) => ({ id: request.params.id }))
}
