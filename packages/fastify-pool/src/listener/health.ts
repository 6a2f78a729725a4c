// Liveness and readiness routes served by every listener. They reveal only a
// status word, so they are safe on public listeners; the details (binds,
// errors, latency) belong to the pool status route on an admin listener.
import type { FastifyInstance } from 'fastify'
import type { NormalizedConfig } from '../config/config.ts'
import type { ListenerState } from '../config/types.ts'

/** What the readiness route reads: the listener's state, and whether its readiness is held back before a drain. */
export interface ReadinessSource {
  readonly state: ListenerState
  readonly readinessHeld: boolean
}

export interface HealthRoutesOptions {
  listener: ReadinessSource
  health: NormalizedConfig['health']
}

/** What the readiness route answers: 'ready', or why not. */
export function readiness (listener: ReadinessSource): ListenerState | 'ready' {
  const state = listener.state
  if (state !== 'running') return state
  // Held: the moment before a drain in which load balancers notice and stop sending (see the plugin's drainDelay).
  return listener.readinessHeld ? 'draining' : 'ready'
}

/**
 * The body of the liveness and readiness routes, for API documentation
 * (e.g. @fastify/swagger): 200 with `ok` or `ready`, 503 with the reason.
 */
export const HEALTH_RESPONSE_SCHEMA = Object.freeze({
  type: 'object',
  properties: { status: { type: 'string', description: 'ok (liveness), ready, or why not: draining, starting, stopped, failed' } },
  required: ['status'],
  additionalProperties: false
} as const)

export async function healthRoutes (app: FastifyInstance, { listener, health }: HealthRoutesOptions): Promise<void> {
  // Probes hit these routes every few seconds: keep them out of the info
  // logs, and out of any cache between the probe and the listener. Their
  // response schema (HEALTH_RESPONSE_SCHEMA) is not attached to the routes:
  // a route schema costs every listener 25 KiB, a seventh of its heap, for a
  // body of one field.
  const routeOptions = { logLevel: 'warn' as const }
  if (health.liveness !== false) {
    app.get(health.liveness, routeOptions, async (_request, reply) => {
      reply.header('cache-control', 'no-store')
      return { status: 'ok' }
    })
  }
  if (health.readiness !== false) {
    app.get(health.readiness, routeOptions, async (_request, reply) => {
      reply.header('cache-control', 'no-store')
      const status = readiness(listener)
      if (status !== 'ready') reply.code(503)
      return { status }
    })
  }
}
