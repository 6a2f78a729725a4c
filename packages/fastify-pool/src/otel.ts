// `fastify-pool/otel`: which listener, generation and worker served a
// request, as OpenTelemetry span attributes for @fastify/otel's `requestHook`
// (docs/opentelemetry.md). Every instance a pool builds carries where it
// serves (`kServedBy`, set before its first request, inherited by the
// instances Fastify derives from it for plugins), so this serves every pool
// of the process however it was made (createPool(), the plugin, the
// command), subscribes to nothing, and imports neither @fastify/otel nor
// @opentelemetry/api: neither is a dependency of this package.
import cluster from 'node:cluster'
import type { FastifyRequest } from 'fastify'
import { kServedBy } from './listener/build.ts'

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

// The attributes of each instance, made at its first request and shared by
// the rest; held weakly, so a retired generation is collected as if this
// module did not exist.
const made = new WeakMap<object, PoolSpanAttributes>()

function isServedBy (value: unknown): value is { listener: string, generation: number } {
  return typeof value === 'object' && value !== null && typeof (value as { listener?: unknown }).listener === 'string'
}

/**
 * The pool attributes of the generation that serves `request`; undefined
 * when no pool built the instance serving it (a Fastify app of its own).
 * Generation 0 is the in-memory instance of a stopped listener's inject().
 */
export function poolAttributes (request: FastifyRequest): PoolSpanAttributes | undefined {
  const servedBy: unknown = Reflect.get(request.server, kServedBy)
  if (!isServedBy(servedBy)) return undefined
  let attributes = made.get(servedBy)
  if (attributes === undefined) {
    const worker = cluster.worker?.id
    attributes = Object.freeze({
      [ATTR_LISTENER]: servedBy.listener,
      [ATTR_GENERATION]: servedBy.generation,
      ...(worker === undefined ? {} : { [ATTR_WORKER]: worker })
    })
    made.set(servedBy, attributes)
  }
  return attributes
}

/**
 * @fastify/otel's `requestHook`: adds the pool attributes to each request's
 * span. With a hook of your own, call it from there.
 */
export function poolRequestHook (span: AttributeSink, request: FastifyRequest): void {
  const attributes = poolAttributes(request)
  if (attributes !== undefined) span.setAttributes(attributes)
}
