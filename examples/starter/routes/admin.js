// The admin listener's routes. Every listener already answers /healthz
// (liveness) and /readyz (readiness); this one adds the pool status, which
// names addresses and errors, so it stays on the loopback-only listener.
import { poolStatusRoute } from 'fastify-pool'

/** @param {import('fastify').FastifyInstance} app */
export default async function adminRoutes (app) {
  // GET /pool: every listener's state, latency and uptime. `app.pool` is the
  // running pool, set by fastify-pool for route modules loaded from pool.yaml.
  await app.register(poolStatusRoute, { path: '/pool' })
}
