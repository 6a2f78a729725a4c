// `fastify-pool/otel`: which listener, generation and worker served a
// request, as OpenTelemetry span attributes for @fastify/otel's `requestHook`
// (docs/opentelemetry.md). It learns each generation's Fastify instance from
// the pool's public events, as any subscriber would: a listener's change to
// `running` (its first generation) and `fastify-pool:listener:generation`
// (each swap), both published before the instance gets its first request.
// So it serves every pool of the process, however it was made (createPool(),
// the plugin, the command), and imports neither @fastify/otel nor
// @opentelemetry/api: neither is a dependency of this package.
import cluster from 'node:cluster'
import { subscribe } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import { CHANNELS, type GenerationEvent, type StateChange } from './listener/state.ts'
import type { Listener } from './listener/listener.ts'

/** The listener's name. */
export const ATTR_LISTENER = 'fastify_pool.listener'
/** The number of the listener's Fastify instance that served the request (1 at the first start; each restart adds one). */
export const ATTR_GENERATION = 'fastify_pool.generation'
/** The node:cluster worker id (the command's `--workers`); absent outside a worker. */
export const ATTR_WORKER = 'fastify_pool.worker'

/** The attributes of one generation of one listener, the same object for all its requests. */
export type PoolSpanAttributes = Readonly<{
  'fastify_pool.listener': string
  'fastify_pool.generation': number
  'fastify_pool.worker'?: number
}>

/** What poolRequestHook() needs of a span: an OpenTelemetry `Span` is one. */
export interface AttributeSink {
  setAttributes: (attributes: PoolSpanAttributes) => unknown
}

// Keyed by the generation's Fastify instance, held weakly: a retired
// generation is collected as if this module did not exist.
const served = new WeakMap<object, PoolSpanAttributes>()

function note (listener: Listener, generation: number): void {
  const app = listener.app
  if (app === undefined) return
  const worker = cluster.worker?.id
  served.set(app, Object.freeze({
    [ATTR_LISTENER]: listener.name,
    [ATTR_GENERATION]: generation,
    ...(worker === undefined ? {} : { [ATTR_WORKER]: worker })
  }))
}

// Subscribed once, when this module is first imported: from then on every
// listener that starts or restarts is known (import it before starting a pool).
subscribe(CHANNELS.state, (message) => {
  const change = message as StateChange<Listener>
  if (change.to === 'running') note(change.listener, change.generation)
})
subscribe(CHANNELS.generation, (message) => {
  const event = message as GenerationEvent<Listener>
  note(event.listener, event.generation)
})

/**
 * The pool attributes of the generation that serves `request`; undefined
 * when no pool started the instance serving it (a Fastify app of its own, a
 * stopped listener's in-memory instance for inject()).
 */
export function poolAttributes (request: FastifyRequest): PoolSpanAttributes | undefined {
  // A route of an encapsulated plugin runs in an instance that Fastify made
  // with Object.create() from its parent's: the listener's instance is on its
  // prototype chain.
  for (let instance: object | null = request.server; instance !== null; instance = Object.getPrototypeOf(instance) as object | null) {
    const found = served.get(instance)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * @fastify/otel's `requestHook`: adds the pool attributes to each request's
 * span. With a hook of your own, call it from there.
 */
export function poolRequestHook (span: AttributeSink, request: FastifyRequest): void {
  const attributes = poolAttributes(request)
  if (attributes !== undefined) span.setAttributes(attributes)
}
