// The application's routes: the same in every environment.

/** @param {import('fastify').FastifyInstance} app */
export default async function appRoutes (app) {
  app.get('/', async (request) => ({ hello: 'world', secure: request.protocol === 'https' }))
}
