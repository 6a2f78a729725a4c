// How a listener's responses reach the request-duration histogram, by the
// cheapest way each kind of instance allows (figures in BENCHMARKS.md):
// - with a logger: Fastify's log controller, which Fastify calls anyway;
// - HTTP/1: a mark at routing, recorded on Node's http.server.response.finish;
// - HTTP/2: an onResponse hook per route, and one for unmatched requests.
import { subscribe } from 'node:diagnostics_channel'
import { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { RouteHistogram, Series } from './histogram.ts'

/** The `route` label of a request that matched no route (route labels are URL patterns, which start with "/"). */
export const UNMATCHED_ROUTE = 'unmatched'

/** Records one response of a route: its method, status code and duration in seconds. */
export type Recorder = (method: string, status: number, seconds: number) => void

/**
 * One listener's recorders, one per route pattern, each finding its series
 * by method and status once. Kept per listener name, so restarts and
 * reloads count on; nothing in them reaches a Fastify instance.
 */
export class ListenerRecorder {
  readonly #histogram: RouteHistogram
  readonly #listener: string
  readonly #routes = new Map<string, Recorder>()

  constructor (histogram: RouteHistogram, listener: string) {
    this.#histogram = histogram
    this.#listener = listener
  }

  route (route: string): Recorder {
    let record = this.#routes.get(route)
    if (record !== undefined) return record
    const histogram = this.#histogram
    const listener = this.#listener
    const known = new Map<string, Map<number, Series>>()
    record = (method, status, seconds) => {
      let byStatus = known.get(method)
      if (byStatus === undefined) { byStatus = new Map(); known.set(method, byStatus) }
      let one = byStatus.get(status)
      if (one === undefined) { one = histogram.series({ listener, method, route, status_code: String(status) }); byStatus.set(status, one) }
      histogram.observe(one, seconds)
    }
    this.#routes.set(route, record)
    return record
  }

  /** The recorder of the route a request matched. `request.routeOptions` builds an object: read once per request. */
  of (request: FastifyRequest): Recorder {
    return this.route(request.is404 ? UNMATCHED_ROUTE : request.routeOptions.url ?? UNMATCHED_ROUTE)
  }
}

interface LogControllerLike { requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void }

function isControllerClass (value: unknown): value is new (options: object) => LogControllerLike {
  return typeof value === 'function'
}

/**
 * Fastify options whose log controller records each response as Fastify
 * logs its completion: no hook at all. Only where Fastify calls it anyway:
 * with a logger (without one Fastify does not watch for the end of
 * responses unless a hook asks), a Fastify that has LogController (5.12 and
 * later), an instance this library makes (a factory may use another copy of
 * Fastify, whose check of the class would fail; the caller knows) and no log
 * controller of the user's. Undefined otherwise.
 */
export function recordingOptions (options: FastifyServerOptions, recorder: ListenerRecorder): FastifyServerOptions | undefined {
  // Fastify exports the class from 5.12 on; its typings do not name it.
  const Base: unknown = Reflect.get(Fastify, 'LogController')
  if (!isControllerClass(Base) || (options as { logController?: unknown }).logController !== undefined) return undefined
  if ((options as { loggerInstance?: unknown }).loggerInstance === undefined) return undefined
  class RecordingController extends Base {
    override requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void {
      recorder.of(request)(request.method, reply.statusCode, reply.elapsedTime / 1000)
      super.requestCompleted(error, request, reply, metadata)
    }
  }
  return { ...options, logController: new RecordingController(options) } as FastifyServerOptions
}

/** Record the responses of an instance whose log controller does not: by mark and channel (HTTP/1), else by hooks. */
export function recordWithHooks (app: FastifyInstance, recorder: ListenerRecorder, http2: boolean): void {
  if (http2) addResponseHooks(app, recorder)
  else markRequests(app, recorder)
}

/**
 * HTTP/1: each request is marked as soon as Fastify has routed it (the
 * instance's first onRequest hook, so a request that a later hook or
 * validation rejects is still counted under its route), and recorded when
 * Node has finished its response. That costs about half of an onResponse
 * hook, for which Fastify adds two listeners per response.
 */
function markRequests (app: FastifyInstance, recorder: ListenerRecorder): void {
  listenToResponses()
  app.addHook('onRequest', function markRoute (request, reply, done) {
    const record = recorder.of(request)
    const raw = request.raw as MarkedRequest
    if (raw instanceof IncomingMessage) {
      raw[kRecord] = record
      raw[kStart] = performance.now()
    } else {
      // inject(): no socket, so Node publishes nothing; its response says when it is done.
      const start = performance.now()
      reply.raw.once('finish', () => { record(request.method, reply.raw.statusCode, (performance.now() - start) / 1000) })
    }
    done()
  })
}

const kRecord = Symbol('fastify-pool.metrics.record')
const kStart = Symbol('fastify-pool.metrics.start')
type MarkedRequest = FastifyRequest['raw'] & { [kRecord]?: Recorder, [kStart]?: number }

let listeningToResponses = false
/** One subscription per process: a finished response of a marked request is recorded. */
function listenToResponses (): void {
  if (listeningToResponses) return
  listeningToResponses = true
  subscribe('http.server.response.finish', (message) => {
    const { request, response } = message as { request: MarkedRequest, response: { statusCode: number } }
    const record = request[kRecord]
    if (record === undefined) return
    record(request.method ?? 'GET', response.statusCode, (performance.now() - (request[kStart] ?? 0)) / 1000)
  })
}

/** HTTP/2 (Node publishes no finish channel for it): an onResponse hook per route, which knows its pattern, and one for unmatched requests. */
function addResponseHooks (app: FastifyInstance, recorder: ListenerRecorder): void {
  const hookFor = (record: Recorder) => function recordDuration (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    record(request.method, reply.statusCode, reply.elapsedTime / 1000)
    done()
  }
  app.addHook('onRoute', (route) => {
    const hook = hookFor(recorder.route(route.url ?? route.path))
    const own = route.onResponse
    route.onResponse = own === undefined ? [hook] : [...(Array.isArray(own) ? own : [own]), hook] as typeof route.onResponse
  })
  const unmatched = hookFor(recorder.route(UNMATCHED_ROUTE))
  app.addHook('onResponse', function countUnmatched (request, reply, done) {
    if (request.is404) unmatched(request, reply, done)
    else done()
  })
}
