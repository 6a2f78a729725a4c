// Building a generation: the listener's Fastify instance made with the
// factory (or fastify()) on the listener's server, through the pool's
// building hooks, with its health routes and its handler plugin; and the
// Fastify options it is made with.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginCallback, type FastifyServerOptions } from 'fastify'
import type { NormalizedConfig } from '../config/config.ts'
import { TwoStepClose } from './closing.ts'
import { FST_POOL_FACTORY } from '../base/errors.ts'
import { handlerFor } from '../config/handlers.ts'
import { Generation, type EventListener, type RequestHandler, type ServerFactory } from './generation.ts'
import { healthRoutes, type ReadinessSource } from './health.ts'
import type { NodeServer, ServerHandle } from './server.ts'
import type { BuildInfo, Factory, Handlers, HookRunner, ListenerRef } from '../config/types.ts'
import { Upgrades } from './upgrades.ts'
import type { Gate } from './overload.ts'

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

function added (server: NodeServer, before: Function[]): EventListener[] {
  return server.listeners('clientError').filter(l => !before.includes(l)) as EventListener[]
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
