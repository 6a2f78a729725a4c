// A listener: one address, one Node server it owns for its whole running life,
// and the Fastify generations that serve it. Lifecycle calls are queued so that
// any mix of start/stop/restart ends in the state of the last call.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer, createServer as createH2Server, type Http2Server, type Http2Session } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginCallback, type FastifyServerOptions, type InjectOptions, type LightMyRequestResponse } from 'fastify'
import { deriveExpose, serverTls, type NormalizedConfig } from './config.ts'
import { FST_POOL_FACTORY, FST_POOL_RESTART, FST_POOL_START, FST_POOL_STOP, FST_POOL_TLS, listenerFailures } from './errors.ts'
import { Generation, type Request, type RequestHandler, type Response } from './generation.ts'
import { healthRoutes } from './health.ts'
import { loadTls, type ServerTlsOptions, type TlsConfig } from './tls.ts'
import type { Factory, Handlers, ListenerState, ListenerStatus, StopOptions, StopReport } from './types.ts'

type NodeServer = HttpServer | Http2Server

/** What a listener takes from the pool that made it. */
export interface ListenerContext {
  handlers: Handlers | undefined
  factory: Factory | undefined
  logger: FastifyBaseLogger | undefined
  stopTimeout: number
}

type Op = 'start' | 'stop' | 'restart'

export class Listener {
  #config: NormalizedConfig
  #ctx: ListenerContext
  #log: FastifyBaseLogger | undefined
  #state: ListenerState = 'stopped'
  #server: NodeServer | undefined
  #sockets = new Set<Socket>()
  #sessions = new Set<Http2Session>()
  #gen: Generation | undefined
  #generations = 0
  #startedAt: number | undefined
  #lastError: Error | undefined
  #url: string | undefined
  #address: AddressInfo | string | undefined
  #memoryApp: Promise<FastifyInstance> | undefined
  #tail: Promise<unknown> = Promise.resolve()
  #pending: { op: Op, promise: Promise<unknown> } | undefined
  #lastStop: StopReport | undefined

  constructor (config: NormalizedConfig, ctx: ListenerContext) {
    this.#config = config
    this.#ctx = { ...ctx }
    this.#log = ctx.logger?.child({ listener: config.name, bind: config.bind }, config.logLevel === undefined ? {} : { level: config.logLevel })
  }

  get name (): string { return this.#config.name }
  /** Canonical bind address as configured (the pool key). */
  get bind (): string { return this.#config.bind }
  get config (): NormalizedConfig { return this.#config }
  /** Public URL: as configured, else derived from the address actually bound. */
  get expose (): string | undefined { return this.#config.expose ?? this.#url }
  /** URL of the address actually bound, while running (undefined for unix sockets). */
  get url (): string | undefined { return this.#url }
  /** Address actually bound, while running: host/port, or the socket path. */
  get address (): AddressInfo | string | undefined { return this.#address }
  /** The Fastify instance serving requests now (undefined while stopped). */
  get app (): FastifyInstance | undefined { return this.#gen?.app }
  /** The Node server this listener owns while running. */
  get server (): NodeServer | undefined { return this.#server }
  get state (): ListenerState { return this.#state }
  get isRunning (): boolean { return this.#state === 'running' }
  /** Milliseconds since the listener started listening; 0 when not running. */
  get uptime (): number { return this.#startedAt === undefined ? 0 : Date.now() - this.#startedAt }
  get handlerKey (): string { return this.#config.handler }
  get logger (): FastifyBaseLogger | undefined { return this.#log }

  /** A snapshot of the listener's state. */
  get status (): ListenerStatus {
    return {
      name: this.name,
      bind: this.bind,
      expose: this.expose,
      url: this.#url,
      handler: this.#config.handler,
      state: this.#state,
      running: this.isRunning,
      disabled: this.#config.disabled,
      optional: this.#config.optional,
      uptime: this.uptime,
      generation: this.#gen?.number ?? 0,
      inflight: this.#gen?.live.size ?? 0,
      lastError: this.#lastError?.message,
      lastStop: this.#lastStop
    }
  }

  /** @internal replaced by Pool.handler() */
  setHandlers (handlers: Handlers | undefined): void { this.#ctx.handlers = handlers }
  /** @internal */
  get context (): ListenerContext { return this.#ctx }
  /** @internal pool-wide lifecycle hooks (health readiness) look at this. */
  get draining (): boolean { return this.#state === 'draining' }

  /** Start listening. Resolves once the socket is bound; a running listener is left alone. */
  start (): Promise<void> { return this.#enqueue('start', () => this.#start()) as Promise<void> }

  /** Drain and close. Resolves once the last connection is gone (or the deadline cut it). */
  stop (options: StopOptions = {}): Promise<StopReport | undefined> {
    return this.#enqueue('stop', () => this.#stop(options.timeout ?? this.#ctx.stopTimeout)) as Promise<StopReport | undefined>
  }

  /** Swap in a new Fastify instance on the same socket; starts a stopped listener. */
  restart (options: StopOptions = {}): Promise<void> {
    return this.#enqueue('restart', () => this.#restart(options.timeout ?? this.#ctx.stopTimeout)) as Promise<void>
  }

  /** Replace the TLS certificate of the live server without a restart. */
  async setTls (tls: TlsConfig): Promise<void> {
    const problems: string[] = []
    const options = loadTls(tls, this.#config.baseDir, (field, message) => problems.push(`tls.${field}: ${message}`))
    if (options === undefined) throw new FST_POOL_TLS(this.name, problems.join('; '))
    const server = this.#server
    if (server !== undefined) {
      if (this.#config.tls === undefined) throw new FST_POOL_TLS(this.name, 'it serves plain HTTP; stop it, then set TLS and start it again')
      ;(server as unknown as { setSecureContext (o: ServerTlsOptions): void }).setSecureContext(options)
    }
    this.#config = Object.freeze({ ...this.#config, tls })
  }

  /** Run a request through this listener's Fastify instance, without a socket. */
  async inject (request: InjectOptions | string): Promise<LightMyRequestResponse> {
    const app = this.#gen?.app ?? await (this.#memoryApp ??= this.#buildInMemory())
    return app.inject(request)
  }

  // Lifecycle calls run one after another; a call that repeats the last queued
  // one (stop after stop, restart after restart) shares its promise.
  #enqueue (op: Op, run: () => Promise<unknown>): Promise<unknown> {
    if (this.#pending?.op === op && op !== 'start') return this.#pending.promise
    const promise = this.#tail.then(run)
    const entry = { op, promise }
    this.#pending = entry
    this.#tail = promise.then(() => {}, () => {}).finally(() => { if (this.#pending === entry) this.#pending = undefined })
    return promise
  }

  async #start (): Promise<void> {
    if (this.#state === 'running') return
    if (this.#config.disabled) throw listenerFailures(FST_POOL_START, [this.#failure(new Error('listener is disabled'))])
    this.#state = 'starting'
    this.#lastError = undefined
    let server: NodeServer | undefined
    let gen: Generation | undefined
    try {
      await this.#closeMemoryApp()
      const tls = serverTls(this.#config)
      server = this.#createServer(tls)
      gen = await this.#build(server)
      server.on('request', gen.dispatch)
      await listen(server, this.#config)
    } catch (err) {
      if (gen !== undefined) await gen.app.close().catch(() => {})
      if (server?.listening === true) await new Promise(resolve => server?.close(resolve))
      this.#forgetServer()
      this.#state = 'failed'
      this.#lastError = err as Error
      throw listenerFailures(FST_POOL_START, [this.#failure(err as Error)])
    }
    server.on('error', (err) => this.#log?.error({ err }, 'server error'))
    this.#server = server
    this.#gen = gen
    this.#startedAt = Date.now()
    this.#address = server.address() ?? undefined
    this.#url = typeof this.#address === 'object' && this.#address !== null
      ? deriveExpose({ kind: 'tcp', host: this.#config.address.kind === 'tcp' ? this.#config.address.host : undefined, port: 0 }, this.#config.tls !== undefined, this.#address.port)
      : undefined
    this.#state = 'running'
    this.#log?.info({ url: this.#url ?? this.#address }, 'listener started')
  }

  async #restart (timeout: number): Promise<void> {
    if (this.#state !== 'running') {
      try {
        await this.#start()
        return
      } catch (err) {
        throw listenerFailures(FST_POOL_RESTART, [this.#failure(((err as { cause?: Error }).cause ?? err) as Error)])
      }
    }
    const server = this.#server as NodeServer
    const old = this.#gen as Generation
    let next: Generation
    let tls: ServerTlsOptions | undefined
    try {
      // Re-read certificate files so that a restart picks up renewed ones.
      tls = serverTls(this.#config)
      next = await this.#build(server)
    } catch (err) {
      this.#lastError = err as Error
      this.#log?.error({ err }, 'restart failed; the running generation keeps serving')
      throw listenerFailures(FST_POOL_RESTART, [this.#failure(err as Error)])
    }
    if (tls !== undefined) (server as unknown as { setSecureContext (o: ServerTlsOptions): void }).setSecureContext(tls)
    // The swap is synchronous: every request from now on reaches the new generation.
    server.removeListener('request', old.dispatch)
    server.on('request', next.dispatch)
    this.#gen = next
    this.#log?.info({ generation: next.number }, 'listener restarted')
    await this.#retire(old, timeout)
  }

  /** Let an old generation finish its requests (up to the deadline), then close it. */
  async #retire (gen: Generation, timeout: number): Promise<number> {
    let cut = 0
    if (gen.live.size > 0) {
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, timeout); timer.unref() })
      await Promise.race([gen.idle(), deadline])
      clearTimeout(timer)
      if (gen.live.size > 0) cut = gen.cut()
    }
    if (cut > 0) this.#log?.warn({ cut, generation: gen.number }, `drain deadline (${timeout} ms) reached: cut ${cut} request(s) in flight`)
    for (const listener of gen.clientErrorListeners) this.#server?.removeListener('clientError', listener)
    await gen.app.close()
    return cut
  }

  async #stop (timeout: number): Promise<StopReport | undefined> {
    const server = this.#server
    const gen = this.#gen
    if (server === undefined || gen === undefined || this.#state !== 'running') {
      await this.#closeMemoryApp()
      return undefined
    }
    const began = Date.now()
    this.#state = 'draining'
    // 1. New requests on connections still open are refused with 503 and Connection: close.
    server.removeListener('request', gen.dispatch)
    server.on('request', refuse)
    // 2. Requests in flight finish, and their clients are told not to reuse the connection.
    gen.closeAfterResponse()
    // 3. No new connections; idle keep-alive connections close now, busy ones when their request ends.
    const closed = new Promise<void>(resolve => server.close(() => resolve()))
    closeIdle(server)
    for (const session of this.#sessions) session.close()
    gen.onSettle = () => closeIdle(server)
    // 4. At the deadline whatever remains is destroyed, and counted.
    let cut = 0
    const timer = setTimeout(() => {
      cut = gen.cut()
      for (const socket of this.#sockets) socket.destroy()
      for (const session of this.#sessions) session.destroy()
    }, timeout)
    timer.unref()
    const errors: Error[] = []
    try {
      await closed
    } finally {
      clearTimeout(timer)
    }
    if (cut > 0) this.#log?.warn({ cut }, `drain deadline (${timeout} ms) reached: cut ${cut} request(s) in flight`)
    server.removeListener('request', refuse)
    for (const listener of gen.clientErrorListeners) server.removeListener('clientError', listener)
    try {
      await gen.app.close()
    } catch (err) {
      errors.push(err as Error)
    }
    this.#forgetServer()
    this.#gen = undefined
    this.#startedAt = undefined
    this.#url = undefined
    this.#address = undefined
    this.#state = 'stopped'
    const report: StopReport = { name: this.name, bind: this.bind, duration: Date.now() - began, cut }
    this.#lastStop = report
    this.#log?.info(report, 'listener stopped')
    if (errors.length > 0) {
      this.#lastError = errors[0]
      throw listenerFailures(FST_POOL_STOP, [this.#failure(errors[0] as Error)])
    }
    return report
  }

  #createServer (tls: ServerTlsOptions | undefined): NodeServer {
    const c = this.#config
    const timeouts = { requestTimeout: c.requestTimeout, headersTimeout: c.headersTimeout, keepAliveTimeout: c.keepAliveTimeout }
    let server: NodeServer
    if (c.http2) {
      server = tls === undefined ? createH2Server() : createSecureServer({ ...tls, allowHTTP1: true })
      server.on('session', (session: Http2Session) => {
        this.#sessions.add(session)
        session.once('close', () => this.#sessions.delete(session))
      })
    } else {
      server = tls === undefined ? createHttpServer(timeouts) : createHttpsServer({ ...tls, ...timeouts })
      server.keepAliveTimeout = c.keepAliveTimeout
    }
    server.setTimeout(c.connectionTimeout)
    const sockets = this.#sockets
    server.on('connection', (socket: Socket) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
    return server
  }

  #forgetServer (): void {
    this.#server = undefined
    this.#sockets.clear()
    this.#sessions.clear()
  }

  /** Build a ready Fastify instance whose requests come from `server`. */
  async #build (server: NodeServer): Promise<Generation> {
    let handler: RequestHandler | undefined
    const before = new Set(server.listeners('clientError'))
    const options = this.#fastifyOptions((h) => { handler = h as RequestHandler; return server })
    const app = await this.#make(options)
    try {
      if (handler === undefined || (app.server as unknown) !== server) throw new FST_POOL_FACTORY(this.name)
      await app.ready()
    } catch (err) {
      for (const l of server.listeners('clientError')) if (!before.has(l)) server.removeListener('clientError', l as () => void)
      await app.close().catch(() => {})
      throw err
    }
    const added = server.listeners('clientError').filter(l => !before.has(l)) as Array<(...args: unknown[]) => void>
    return new Generation(app, ++this.#generations, handler, added)
  }

  /** An instance for inject() while the listener is not running; it has a server of its own that never listens. */
  async #buildInMemory (): Promise<FastifyInstance> {
    const app = await this.#make(this.#fastifyOptions(undefined))
    await app.ready()
    return app
  }

  async #closeMemoryApp (): Promise<void> {
    const pending = this.#memoryApp
    this.#memoryApp = undefined
    if (pending !== undefined) await (await pending.catch(() => undefined))?.close()
  }

  #fastifyOptions (serverFactory: ((handler: (req: Request, res: Response) => void) => NodeServer) | undefined): FastifyServerOptions {
    const c = this.#config
    return {
      ...c.fastify,
      bodyLimit: c.bodyLimit,
      connectionTimeout: c.connectionTimeout,
      keepAliveTimeout: c.keepAliveTimeout,
      requestTimeout: c.requestTimeout,
      ...(c.http2 ? { http2: true } : {}),
      ...(this.#log === undefined ? {} : { loggerInstance: this.#log }),
      ...(serverFactory === undefined ? {} : { serverFactory })
    } as FastifyServerOptions
  }

  /** Make a Fastify instance with the factory (or fastify()), then add health routes and the listener's handler. */
  async #make (options: FastifyServerOptions): Promise<FastifyInstance> {
    const factory = this.#ctx.factory
    const app = factory === undefined ? Fastify(options) : await factory(this.#config, options)
    if (app === null || typeof app !== 'object' || typeof (app as FastifyInstance).register !== 'function') throw new FST_POOL_FACTORY(this.name)
    if (this.#config.health.liveness !== false || this.#config.health.readiness !== false) {
      app.register(healthRoutes, { listener: this, health: this.#config.health })
    }
    const handlers = this.#ctx.handlers
    const plugin = typeof handlers === 'function' ? handlers : handlers?.[this.#config.handler]
    if (plugin !== undefined) app.register(plugin as FastifyPluginCallback)
    return app
  }

  #failure (error: Error): { name: string, bind: string, error: Error } {
    return { name: this.name, bind: this.bind, error }
  }
}

function listen (server: NodeServer, config: NormalizedConfig): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => { server.removeListener('listening', onListening); reject(err) }
    const onListening = (): void => { server.removeListener('error', onError); resolve() }
    server.once('error', onError)
    server.once('listening', onListening)
    const a = config.address
    server.listen(a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port })
  })
}

function closeIdle (server: NodeServer): void {
  (server as HttpServer).closeIdleConnections?.()
}

const REFUSED = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The server is shutting down' })

/** Answer requests that arrive while draining. */
function refuse (req: Request, res: Response): void {
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(REFUSED) }
  if (req.httpVersionMajor === 1) headers.connection = 'close'
  ;(res as import('node:http').ServerResponse).writeHead(503, headers)
  res.end(REFUSED)
}
