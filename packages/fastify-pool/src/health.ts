// Liveness and readiness routes served by every listener. They reveal only a
// status word, so they are safe on public listeners.
import type { FastifyInstance } from 'fastify'
import type { NormalizedConfig } from './config.ts'
import type { ListenerState } from './types.ts'

export interface HealthRoutesOptions {
  listener: { readonly state: ListenerState }
  health: NormalizedConfig['health']
}

export async function healthRoutes (app: FastifyInstance, { listener, health }: HealthRoutesOptions): Promise<void> {
  // Probes hit these routes every few seconds; keep them out of the info logs.
  const routeOptions = { logLevel: 'warn' as const }
  if (health.liveness !== false) {
    app.get(health.liveness, routeOptions, async () => ({ status: 'ok' }))
  }
  if (health.readiness !== false) {
    app.get(health.readiness, routeOptions, async (_request, reply) => {
      const state = listener.state
      if (state === 'running') return { status: 'ready' }
      reply.code(503)
      return { status: state }
    })
  }
}
