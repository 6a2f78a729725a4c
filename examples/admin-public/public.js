// The public API: only what customers may see.

/** @param {import('fastify').FastifyInstance} app */
export default async function publicRoutes (app) {
  app.get('/', async () => ({ hello: 'world' }))
}
