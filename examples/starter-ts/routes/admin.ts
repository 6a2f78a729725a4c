// The admin listener's routes. Every listener already answers /healthz
// (liveness) and /readyz (readiness); the pool file puts the control API
// (/pool) and the metrics (/metrics) here; this module adds the health
// report of every listener, which names addresses and errors, so it stays on
// the loopback-only listener.
import type { FastifyInstance } from 'fastify'
import { poolStatusRoute } from 'fastify-pool'

export default async function adminRoutes (app: FastifyInstance): Promise<void> {
  // GET /health: every listener's health check: status, latency, history.
  // `app.pool` is the running pool, set by fastify-pool for route modules
  // loaded from pool.yaml.
  await app.register(poolStatusRoute, { path: '/health' })
}
