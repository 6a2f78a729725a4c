// One generation of a listener: a ready Fastify instance bound to the
// listener's server, and the requests it is still serving. A restart makes a
// new generation, points the socket at it, and retires the old one once its
// requests are done.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { FastifyInstance } from 'fastify'

export type Request = IncomingMessage | Http2ServerRequest
export type Response = ServerResponse | Http2ServerResponse
export type RequestHandler = (req: Request, res: Response) => void

export class Generation {
  readonly app: FastifyInstance
  readonly number: number
  /** Responses not yet closed: the requests this generation is serving. */
  readonly live = new Set<Response>()
  /** The server's request listener for this generation. */
  readonly dispatch: RequestHandler
  /** clientError listeners Fastify added to the shared server for this instance. */
  readonly clientErrorListeners: Array<(...args: unknown[]) => void>
  /** Called after each request ends; set while draining to close connections that fall idle. */
  onSettle: (() => void) | undefined
  #idle: Array<() => void> = []
  readonly #done: (res: Response) => void

  constructor (app: FastifyInstance, number: number, handler: RequestHandler, clientErrorListeners: Array<(...args: unknown[]) => void>) {
    this.app = app
    this.number = number
    this.clientErrorListeners = clientErrorListeners
    const live = this.live
    // One shared 'close' listener per generation: no closure per request.
    const done = (res: Response): void => {
      if (!live.delete(res)) return
      this.onSettle?.()
      if (live.size === 0 && this.#idle.length > 0) {
        for (const resolve of this.#idle.splice(0)) resolve()
      }
    }
    function onClose (this: Response): void { done(this) }
    this.dispatch = (req, res) => {
      live.add(res)
      res.on('close', onClose)
      handler(req, res)
    }
    this.#done = done
  }

  /**
   * Let go of ghosts: a pipelined HTTP/1 response queued behind another has no
   * socket yet, and if the client leaves before its turn Node never emits its
   * 'close'. Such a response is done once its connection is destroyed.
   * Tracking queued responses per request cost about 10 % of throughput in
   * garbage collection under pipelined load, so this sweep runs only when
   * someone counts or waits: status(), a restart or a stop.
   */
  sweep (): void {
    for (const res of this.live) {
      if ((res as ServerResponse).socket === null && res.req.httpVersionMajor === 1 && res.req.socket?.destroyed === true) this.#done(res)
    }
  }

  /** A connection closed: sweep if a restart or a stop is waiting for this generation. */
  connectionClosed (): void {
    if (this.#idle.length > 0 || this.onSettle !== undefined) this.sweep()
  }

  /** Resolves once no request of this generation is in flight. */
  idle (): Promise<void> {
    this.sweep()
    if (this.live.size === 0) return Promise.resolve()
    return new Promise(resolve => this.#idle.push(resolve))
  }

  /** Ask clients not to reuse the connections of requests still in flight. */
  closeAfterResponse (): void {
    for (const res of this.live) {
      if (!res.headersSent && res.req.httpVersionMajor === 1) res.setHeader('connection', 'close')
    }
  }

  /**
   * Abort the requests still in flight; returns how many were cut. An HTTP/1
   * request owns its connection, so the connection is destroyed; an HTTP/2
   * stream is reset (CANCEL) and the other streams of its session live on.
   */
  cut (): number {
    this.sweep()
    const count = this.live.size
    for (const res of [...this.live]) {
      const stream = (res as Http2ServerResponse).stream
      if (stream !== undefined) stream.close(h2.NGHTTP2_CANCEL)
      else (res as ServerResponse).socket?.destroy()
    }
    return count
  }
}
