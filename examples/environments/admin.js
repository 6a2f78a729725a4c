// Admin routes: the pool status.
import { poolStatusRoute } from 'fastify-pool'

/** @param {import('fastify').FastifyInstance} app */
export default async function adminRoutes (app) {
  await app.register(poolStatusRoute, { path: '/pool' })
}
