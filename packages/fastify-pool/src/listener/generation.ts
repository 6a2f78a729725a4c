// One generation of a listener: a ready Fastify instance bound to the
// listener's server. Building one (the factory, health routes, the handler
// plugin), and retiring one: a restart builds a new generation, points the
// server at it, and retires the old one once the responses it owes are done.
//
// What a generation owes is read from the connections at the moment it stops
// receiving requests (connections.ts), not counted per request: over HTTP/1
// the last response each socket had then; over HTTP/2 the streams it still
// serves (HTTP/2 answers out of order, so those are kept in a set). The
// connections it upgraded (WebSockets) are its own until they close
// (upgrades.ts): a retiring generation lives on for them, up to
// `upgradeDrainTimeout`, then says goodbye through its preClose hooks.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginCallback, type FastifyServerOptions } from 'fastify'
import type { NormalizedConfig } from '../config/config.ts'
import { http1Dispatch, lastResponse, owed, responseDone, whenDone, type Http1Response, type Http1Socket } from './connections.ts'
import { TwoStepClose, type PoolClosing } from './closing.ts'
import { FST_POOL_FACTORY } from '../base/errors.ts'
import { handlerFor } from '../config/handlers.ts'
import { healthRoutes, type ReadinessSource } from './health.ts'
import type { NodeServer, ServerHandle } from './server.ts'
import type { BuildInfo, Factory, Handlers, HookRunner, ListenerRef, RetireReport, RetiringStatus } from '../config/types.ts'
import { holdWrites, Upgrades } from './upgrades.ts'
import type { Gate } from './overload.ts'

export type { RetireReport }

export type Request = IncomingMessage | Http2ServerRequest
export type Response = ServerResponse | Http2ServerResponse
export type RequestHandler = (req: Request, res: Response) => void
type Listener = (...args: unknown[]) => void

/** What the listener's server factory hands Fastify, and what it got back. */
export type ServerFactory = (handler: RequestHandler) => NodeServer

/** After the goodbyes of a retirement were spread, how long its upgraded connections may take to close before they are destroyed. */
export const UPGRADE_GRACE_MS = 2000

export class Generation {
  readonly app: FastifyInstance
  readonly number: number
  /** The server's request listener for this generation. */
  readonly dispatch: RequestHandler
  /** clientError listeners Fastify added to the shared server for this instance. */
  readonly clientErrorListeners: Listener[]
  /** HTTP/2 streams in progress (HTTP/2 servers only). */
  readonly streams: Set<ServerHttp2Stream> | undefined
  /** Its listeners for the upgrade events, and the connections it upgraded. */
  readonly upgrades: Upgrades
  readonly #closer: TwoStepClose
  #farewell: Promise<void> | undefined
  /** Set when it stopped receiving requests: each socket's last response then, still owed. */
  owedAt: Map<Http1Socket, Http1Response> | undefined
  #streamsIdle: Array<() => void> = []

  constructor (app: FastifyInstance, number: number, handler: RequestHandler, clientErrorListeners: Listener[], http2: boolean, upgrades: Upgrades, closer: TwoStepClose) {
    this.app = app
    this.number = number
    this.clientErrorListeners = clientErrorListeners
    this.upgrades = upgrades
    this.#closer = closer
    const h1 = http1Dispatch(handler as (req: IncomingMessage, res: ServerResponse) => void) as RequestHandler
    if (!http2) {
      this.streams = undefined
      this.dispatch = h1
      return
    }
    const streams = new Set<ServerHttp2Stream>()
    const waiting = this.#streamsIdle
    function onStreamClose (this: ServerHttp2Stream): void {
      streams.delete(this)
      if (streams.size === 0 && waiting.length > 0) for (const resolve of waiting.splice(0)) resolve()
    }
    this.streams = streams
    this.dispatch = (req, res) => {
      if (req.httpVersionMajor !== 2) return h1(req, res)
      const stream = (res as Http2ServerResponse).stream
      streams.add(stream)
      stream.once('close', onStreamClose)
      handler(req, res)
    }
  }

  /**
   * It no longer receives requests: note what it owes. A socket whose last
   * response is owed by an older generation still retiring is that one's.
   */
  seal (handle: ServerHandle, older: Iterable<Generation>): void {
    const theirs = new Set<Http1Response>()
    for (const gen of older) for (const res of gen.owedAt?.values() ?? []) theirs.add(res)
    const owedAt = new Map<Http1Socket, Http1Response>()
    for (const socket of handle.http1) {
      const last = lastResponse(socket)
      if (last !== undefined && !responseDone(last, socket) && !theirs.has(last)) owedAt.set(socket, last)
    }
    this.owedAt = owedAt
  }

  /** Requests in progress: over HTTP/1 what it owed when sealed (call seal() first), plus HTTP/2 streams. */
  get inflight (): number {
    let n = this.streams?.size ?? 0
    for (const [socket, last] of this.owedAt ?? []) n += owed(socket, last)
    return n
  }

  /** Resolves once everything it owes is done. */
  idle (): Promise<void> {
    const waits: Array<Promise<void>> = []
    for (const [socket, last] of this.owedAt ?? []) waits.push(whenDone(last, socket))
    if (this.streams !== undefined && this.streams.size > 0) waits.push(new Promise(resolve => this.#streamsIdle.push(resolve)))
    return Promise.all(waits).then(() => {})
  }

  /**
   * Abort what it still owes; returns how many requests that was. An HTTP/1
   * connection answers in order, so the connection is destroyed, with every
   * response still queued on it (those are counted too); an HTTP/2 stream is
   * reset (CANCEL) and the other streams of its session live on.
   */
  cut (): number {
    let count = 0
    for (const [socket] of this.owedAt ?? []) {
      count += owed(socket)
      socket.destroy()
    }
    for (const stream of this.streams ?? []) {
      count++
      stream.close(h2.NGHTTP2_CANCEL)
    }
    return count
  }

  /**
   * Say goodbye: run its preClose hooks (a WebSocket plugin closes its
   * clients there, reading `app.poolClosing` for the reason), with what they
   * write to its upgraded connections spread over `window` ms. Its onClose
   * hooks wait for close(). Resolves once the goodbyes are sent; a second
   * call joins the first.
   */
  farewell (reason: PoolClosing['reason'], window: number): Promise<void> {
    if (this.#farewell !== undefined) return this.#farewell
    const release = holdWrites(this.upgrades.sockets, window)
    this.#farewell = this.#closer.begin(this.app, reason).then(release)
    return this.#farewell
  }

  /** True once farewell() began closing its Fastify instance (which then refuses inject()). */
  get closing (): boolean { return this.#farewell !== undefined }

  /**
   * Close its Fastify instance (the onClose hooks run now, after the
   * preClose ones if farewell() did not run them). The shared server is left
   * alone: Fastify's close (fastify.js, the onClose it registers at boot)
   * closes `instance.server` only `if (!options.serverFactory ||
   * listening)`, and `forceCloseConnections` acts only while listening; an
   * instance made with the listener's serverFactory never listens (the
   * listener's server does). test/fastify-contract.test.ts holds Fastify to it.
   */
  close (reason: PoolClosing['reason']): Promise<void> {
    this.upgrades.release()
    return this.#closer.finish(this.app, reason)
  }
}

/** How a swapped-out generation retires. */
export interface RetireLimits {
  /** Milliseconds its HTTP requests may take to finish before they are cut. */
  timeout: number
  /** Milliseconds its upgraded connections may stay open before it says goodbye. */
  upgradeTimeout: number
  /** Over how many milliseconds the goodbyes are spread. */
  closeWindow: number
}

/**
 * Let an old generation finish what it owed at the swap (up to `timeout`)
 * and keep its upgraded connections (until they close, up to
 * `upgradeTimeout`), then close its Fastify instance: its preClose hooks say
 * goodbye to the connections still upgraded, what is open after a grace is
 * destroyed, and its onClose hooks run only after its last response and its
 * last connection. Never rejects; a failed close is passed to `onCloseError`.
 */
export async function retire (gen: Generation, limits: RetireLimits, onCut: (requests: number, upgraded: number) => void, onCloseError: (err: Error) => void): Promise<RetireReport> {
  const began = Date.now()
  const [requests, upgraded] = await Promise.all([finishRequests(gen, limits.timeout), endUpgraded(gen, limits)])
  if (requests + upgraded > 0) onCut(requests, upgraded)
  // Nothing of it stays reachable from the sockets it served.
  gen.owedAt = undefined
  try {
    await gen.close('restart')
  } catch (err) {
    onCloseError(err as Error)
  }
  return { generation: gen.number, duration: Date.now() - began, cut: requests + upgraded, upgradedCut: upgraded }
}

async function finishRequests (gen: Generation, timeout: number): Promise<number> {
  if (gen.inflight === 0) return 0
  await within(gen.idle(), timeout)
  return gen.inflight > 0 ? gen.cut() : 0
}

async function endUpgraded (gen: Generation, limits: RetireLimits): Promise<number> {
  if (gen.upgrades.size === 0) return 0
  await within(gen.upgrades.idle(), limits.upgradeTimeout)
  if (gen.upgrades.size === 0) return 0
  await gen.farewell('restart', limits.closeWindow)
  await within(gen.upgrades.idle(), UPGRADE_GRACE_MS)
  const cut = gen.upgrades.destroy()
  // Their 'close' events (and the handlers' 'close' listeners) come before the onClose hooks.
  await gen.upgrades.idle()
  return cut
}

/** Resolves when `done` does, or after `ms`, whichever is first; its timer does not hold the process. */
async function within (done: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, ms); timer.unref() })
  await Promise.race([done, deadline])
  clearTimeout(timer)
}

/**
 * Build a ready generation whose requests come from `server`, through the
 * listener's load shedding when it has one (`gateOf()`, asked once the
 * instance is built). `make` builds the
 * Fastify instance with the server factory it is given. Nothing that
 * lives longer than the instance (the server, the listener) keeps a reference
 * to it, except the listeners that the swap removes again.
 */
export async function buildGeneration (handle: ServerHandle, name: string, number: number, http2: boolean, make: (serverFactory: ServerFactory, closer: TwoStepClose) => Promise<FastifyInstance>, gateOf: () => Gate | undefined = () => undefined): Promise<Generation> {
  const server = handle.server
  const before = server.listeners('clientError')
  const slot = factorySlot(server)
  const upgrades = new Upgrades()
  const closer = new TwoStepClose()
  // Its plugins' 'upgrade' listeners are its own, not the serving generation's.
  handle.upgrades.building(upgrades)
  let app: FastifyInstance | undefined
  try {
    app = await make(slot.serverFactory, closer)
    if (slot.handler === undefined || (app.server as unknown) !== server) throw new FST_POOL_FACTORY(name)
    await app.ready()
  } catch (err) {
    // A failed build leaves nothing attached to the live server.
    for (const l of added(server, before)) server.removeListener('clientError', l)
    handle.upgrades.building(undefined)
    upgrades.release()
    await app?.close().catch(() => {})
    throw err
  }
  handle.upgrades.building(undefined)
  // Load shedding sits before Fastify: a request it holds or refuses costs no
  // routing. Configured once built: the building hooks name what it must not hold.
  const gate = gateOf()
  const handler = gate === undefined ? slot.handler : gate.wrap(slot.handler)
  slot.handler = undefined
  return new Generation(app, number, handler, added(server, before), http2, upgrades, closer)
}

/**
 * The serverFactory Fastify keeps in its options for the instance's life. It
 * sees only this slot and the server: a closure made inside buildGeneration
 * would keep that call's whole scope, and with it the listener list of the
 * previous generation (each restart then retained all the ones before it).
 */
function factorySlot (server: NodeServer): { handler: RequestHandler | undefined, serverFactory: ServerFactory } {
  const slot: { handler: RequestHandler | undefined, serverFactory: ServerFactory } = {
    handler: undefined,
    serverFactory: (handler) => { slot.handler = handler; return server }
  }
  return slot
}

function added (server: NodeServer, before: Function[]): Listener[] {
  return server.listeners('clientError').filter(l => !before.includes(l)) as Listener[]
}

/**
 * The property of every instance a pool builds: `{ listener, generation }`
 * (generation 0 for the in-memory instance of inject()). A registered
 * symbol, so that two copies of the package agree.
 */
export const kServedBy = Symbol.for('fastify-pool.servedBy')

/** What building a listener's Fastify instance takes from the pool. */
export interface BuildContext {
  factory: Factory | undefined
  handlers: Handlers | undefined
  hooks: HookRunner
  owner?: { readonly pool: object | undefined }
}

/**
 * Make a listener's Fastify instance with the factory (or fastify()), then
 * run the pool's building hooks (onOptions before, onBuild after), add its
 * health routes and its handler plugin. `listener` is what the readiness
 * route reads its state from; `exempt` gathers the paths the hooks ask load
 * shedding never to hold.
 */
export async function makeInstance (ctx: BuildContext, config: NormalizedConfig, given: FastifyServerOptions, listener: ReadinessSource & ListenerRef, generation: number, closer: TwoStepClose = new TwoStepClose(), exempt: string[] = []): Promise<FastifyInstance> {
  const info: BuildInfo = {
    pool: ctx.owner?.pool,
    listener,
    name: config.name,
    bind: config.bind,
    generation,
    http2: config.http2,
    factory: ctx.factory !== undefined,
    exempt: (...paths) => { exempt.push(...paths) }
  }
  const options = ctx.hooks.options(given, info)
  const app = ctx.factory === undefined ? Fastify(options) : await ctx.factory(config, options)
  if (app === null || typeof app !== 'object' || typeof (app as FastifyInstance).register !== 'function') throw new FST_POOL_FACTORY(config.name)
  // What any code holding the instance (or a request's `server`, which
  // inherits it) can read of where it serves: fastify-pool/otel does.
  Object.defineProperty(app, kServedBy, { value: Object.freeze({ listener: config.name, generation }) })
  // Before the routes, so that the hooks they add see all of them (and the 404s).
  ctx.hooks.build(app, info)
  if (config.health.liveness !== false || config.health.readiness !== false) {
    app.register(healthRoutes, { listener, health: config.health })
  }
  const plugin = handlerFor(ctx.handlers, config.handler)
  if (plugin !== undefined) app.register(plugin as FastifyPluginCallback)
  // Last, so that its onClose hook runs before every other one.
  closer.install(app)
  return app
}

/**
 * The Fastify options of a listener's instance: its limits, its logger (a
 * child that says which generation logs), request ids unique across the
 * listeners and generations of a process (`public-2-17`: listener, generation,
 * request; a `genReqId` or `requestIdHeader` of the listener's own wins), and,
 * when it serves a socket, the server factory.
 */
export function fastifyOptions (c: NormalizedConfig, log: FastifyBaseLogger | undefined, serverFactory: ServerFactory | undefined, generation: number): FastifyServerOptions {
  const own = c.fastify as { genReqId?: unknown, requestIdHeader?: unknown }
  let requests = 0
  const prefix = `${c.name}-${generation}-`
  const ids = own.genReqId === undefined && (own.requestIdHeader === undefined || own.requestIdHeader === false)
    ? { genReqId: () => prefix + String(++requests) }
    : {}
  return {
    ...ids,
    // The drain refuses requests itself (503 with Connection: close), and it
    // runs preClose hooks at its start while requests may still be served
    // (a hand-off serves them): Fastify must not answer 503 for it.
    return503OnClosing: false,
    ...c.fastify,
    bodyLimit: c.bodyLimit,
    connectionTimeout: c.connectionTimeout,
    keepAliveTimeout: c.keepAliveTimeout,
    requestTimeout: c.requestTimeout,
    ...(c.http2 ? { http2: true } : {}),
    ...(log === undefined ? {} : { loggerInstance: generation > 0 ? log.child({ generation }) : log }),
    ...(serverFactory === undefined ? {} : { serverFactory })
  } as FastifyServerOptions
}

/** The generations of one listener that a swap left finishing their requests, each with its retirement. */
export class Retiring {
  #map = new Map<Generation, Promise<RetireReport>>()
  #since = new WeakMap<Generation, number>()

  /** Retire `gen` within `limits`; its report resolves once it is closed. */
  add (gen: Generation, limits: RetireLimits, onCut: (requests: number, upgraded: number) => void, onCloseError: (err: Error) => void): Promise<RetireReport> {
    const retired = retire(gen, limits, onCut, onCloseError).finally(() => this.#map.delete(gen))
    this.#map.set(gen, retired)
    this.#since.set(gen, Date.now())
    return retired
  }

  /** What each generation retiring now still holds. */
  status (): RetiringStatus[] {
    const now = Date.now()
    return [...this.#map.keys()].map(gen => ({ generation: gen.number, inflight: gen.owedAt === undefined ? 0 : gen.inflight, upgraded: gen.upgrades.size, since: now - (this.#since.get(gen) ?? now) }))
  }

  /** The generations still retiring. */
  generations (): IterableIterator<Generation> { return this.#map.keys() }

  /** Resolves once every generation retiring now is closed. */
  async settled (): Promise<void> { await Promise.all(this.#map.values()) }
}

/** An instance for inject() while a listener is not running: it has a server of its own that never listens. */
export class MemoryApp {
  #pending: Promise<FastifyInstance> | undefined

  /** The instance, built (and ready) at the first call after a close. */
  get (ctx: BuildContext, config: NormalizedConfig, log: FastifyBaseLogger | undefined, listener: ReadinessSource & ListenerRef): Promise<FastifyInstance> {
    return (this.#pending ??= (async () => {
      const app = await makeInstance(ctx, config, fastifyOptions(config, log, undefined, 0), listener, 0)
      await app.ready()
      return app
    })())
  }

  async close (): Promise<void> {
    const pending = this.#pending
    this.#pending = undefined
    if (pending !== undefined) await (await pending.catch(() => undefined))?.close()
  }
}
