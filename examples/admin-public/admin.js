// Operators' routes, on the loopback-only listener: the pool status, and a
// readiness switch to take the service out of a load balancer before a stop.
import { poolStatusRoute } from 'fastify-pool'

/** @param {import('fastify').FastifyInstance} app */
export default async function adminRoutes (app) {
  await app.register(poolStatusRoute, { path: '/pool' })
  app.get('/listeners', async () => app.pool.status().map(({ name, bind, state, inflight }) => ({ name, bind, state, inflight })))
}
