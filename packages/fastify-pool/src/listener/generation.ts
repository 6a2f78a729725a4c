// One generation of a listener: a ready Fastify instance bound to the
// listener's server, and what it owes. Building one is build.ts; retiring one
// (a restart swaps in a new generation and retires the old once the
// responses it owes are done) is retire.ts.
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
import type { FastifyInstance } from 'fastify'
import { http1Dispatch, lastResponse, owed, responseDone, whenDone, type Http1Response, type Http1Socket } from './connections.ts'
import type { PoolClosing, TwoStepClose } from './closing.ts'
import type { NodeServer, ServerHandle } from './server.ts'
import { holdWrites, type Upgrades } from './upgrades.ts'

export type Request = IncomingMessage | Http2ServerRequest
export type Response = ServerResponse | Http2ServerResponse
export type RequestHandler = (req: Request, res: Response) => void
/** A listener of an event of the server, as Fastify adds them. */
export type EventListener = (...args: unknown[]) => void

/** What the listener's server factory hands Fastify, and what it got back. */
export type ServerFactory = (handler: RequestHandler) => NodeServer

export class Generation {
  readonly app: FastifyInstance
  readonly number: number
  /** The server's request listener for this generation. */
  readonly dispatch: RequestHandler
  /** clientError listeners Fastify added to the shared server for this instance. */
  readonly clientErrorListeners: EventListener[]
  /** HTTP/2 streams in progress (HTTP/2 servers only). */
  readonly streams: Set<ServerHttp2Stream> | undefined
  /** Its listeners for the upgrade events, and the connections it upgraded. */
  readonly upgrades: Upgrades
  readonly #closer: TwoStepClose
  #farewell: Promise<void> | undefined
  /** Set when it stopped receiving requests: each socket's last response then, still owed. */
  owedAt: Map<Http1Socket, Http1Response> | undefined
  #streamsIdle: Array<() => void> = []

  constructor (app: FastifyInstance, number: number, handler: RequestHandler, clientErrorListeners: EventListener[], http2: boolean, upgrades: Upgrades, closer: TwoStepClose) {
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
   * response is owed by an older generation still retiring is that one's;
   * after a canary, only the sockets `owns` says are its own count.
   */
  seal (handle: ServerHandle, older: Iterable<Generation>, owns: (socket: Http1Socket) => boolean = () => true): void {
    const theirs = new Set<Http1Response>()
    for (const gen of older) for (const res of gen.owedAt?.values() ?? []) theirs.add(res)
    const owedAt = new Map<Http1Socket, Http1Response>()
    for (const socket of handle.http1) {
      if (!owns(socket)) continue
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
