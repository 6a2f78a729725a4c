// The Node server a listener owns for its running life: http, https, or
// http2 (with HTTP/1.1 fallback over TLS); its timeouts and TLS context; the
// connections and sessions it holds; listen, and a close that does not cut
// responses short.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer, createServer as createH2Server, type Http2SecureServer, type Http2Server, type Http2Session } from 'node:http2'
import { existsSync, renameSync, rmSync } from 'node:fs'
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net'
import { basename, dirname, join } from 'node:path'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import { formatAddress } from '../config/address.ts'
import type { NormalizedConfig } from '../config/config.ts'
import type { ListenerContext } from '../config/types.ts'
import { explainListenError } from '../base/errors.ts'
import { markSocket, sendStalled, type Http1Socket } from './connections.ts'
import type { ServerTlsOptions } from '../config/tls.ts'
import { listeningFd, setAcceptQueue, setClientCertificates } from './node-internals.ts'
import { UpgradeRouter } from './upgrades.ts'
import type { ProbeTarget } from './accept-probe.ts'

export type NodeServer = HttpServer | Http2Server | Http2SecureServer

/** The accept queue Node listens with (lib/net.js: a backlog of 511; the kernel caps it at net.core.somaxconn). */
const NODE_BACKLOG = 511
/**
 * The accept queue of an overloaded listener (docs/overload.md, "A short
 * accept queue while overloaded"): a busy loop accepts one connection a
 * turn (10 to 15 ms), so 16 wait two targets at most. Measured in suite 9
 * at 5× with the length fixed for a whole run: goodput 0.96 with 16, 0.90
 * with 64 and with 128, 0.78 to 0.85 with 511.
 */
export const SHEDDING_BACKLOG = 16

/** How often the send timeout is checked, at most (it is also never checked less often than a quarter of its value). */
const SWEEP_MS = 1000

/**
 * How often Node checks headersTimeout and requestTimeout. Node's default is
 * 30 s, so a 5 s headersTimeout closed a slow client only after 30 s. A
 * quarter of the smallest of the two, between 100 ms and 1 s, keeps them
 * within about a second of their value (Node walks only connections with a
 * request in progress, natively).
 */
export function checkingInterval (c: Pick<NormalizedConfig, 'headersTimeout' | 'requestTimeout'>): number {
  const set = [c.headersTimeout, c.requestTimeout].filter(t => t > 0)
  if (set.length === 0) return 30_000
  return Math.min(1000, Math.max(100, Math.floor(Math.min(...set) / 4)))
}

export class ServerHandle {
  readonly server: NodeServer
  readonly http2: boolean
  /** Every TCP connection accepted and still open (for TLS, the transport under the TLS socket). */
  readonly sockets = new Set<Socket>()
  /** The sockets HTTP/1 runs on (the TLS sockets over HTTPS), with their marks. */
  readonly http1 = new Set<Http1Socket>()
  /** HTTP/2 sessions still open. */
  readonly sessions = new Set<Http2Session>()
  /** Hands each 'upgrade' and 'connect' to the generation serving (upgrades.ts). */
  readonly upgrades: UpgradeRouter
  /** Set when the drain begins: sessions whose handshake ends after that get a GOAWAY at once. */
  draining = false
  /** Called for each HTTP/1 socket that arrives while this is set (the drain sets it). */
  onHttp1: ((socket: Http1Socket) => void) | undefined
  #sendTimeout: number
  /** The socket file this server made, if it listens on a unix socket. */
  #unixPath: string | undefined
  #sweep: NodeJS.Timeout | undefined
  #onStall: (socket: Socket) => void
  /**
   * The accept queue's length when this server bound its TCP socket itself
   * in this process (Node's); undefined on a socket other processes may
   * share (systemd's, one handed over by an upgrade, the workers'): a length
   * set here would be theirs too. In a node:cluster worker that binds
   * through the primary (round-robin, the fallback of `--workers`) the
   * server has no descriptor of its own here, and is left alone too.
   */
  #backlog: number | undefined
  #shortQueue = false
  /** Told of each connection accepted (Gate, whose probe of the accept queue it may be: then true, and it is closed). */
  #onAccept: ((socket: Socket) => boolean) | undefined
  #http1Plain: boolean

  constructor (c: NormalizedConfig, tls: ServerTlsOptions | undefined, onStall: (socket: Socket) => void) {
    this.http2 = c.http2
    this.#sendTimeout = c.sendTimeout
    this.#onStall = onStall
    const timeouts = {
      requestTimeout: c.requestTimeout,
      headersTimeout: c.headersTimeout,
      keepAliveTimeout: c.keepAliveTimeout,
      connectionsCheckingInterval: checkingInterval(c)
    }
    if (c.http2) {
      this.server = tls === undefined ? createH2Server() : createSecureServer({ ...tls, allowHTTP1: true, ...timeouts })
      // Fastify sets this up only on servers it creates. An idle session
      // closes like an idle keep-alive connection would.
      const sessionTimeout = (c.fastify as { http2SessionTimeout?: number }).http2SessionTimeout ?? c.keepAliveTimeout
      const sessions = this.sessions
      this.server.on('session', (session: Http2Session) => {
        sessions.add(session)
        session.once('close', () => sessions.delete(session))
        if (sessionTimeout > 0) session.setTimeout(sessionTimeout, () => session.close())
        if (this.draining) session.close()
      })
    } else {
      this.server = tls === undefined ? createHttpServer(timeouts) : createHttpsServer({ ...tls, ...timeouts })
    }
    this.upgrades = new UpgradeRouter(this.server)
    this.applyTimeouts(c)
    const sockets = this.sockets
    const secure = tls !== undefined
    this.#http1Plain = tls === undefined && !c.http2
    this.server.on('connection', (socket: Socket) => {
      if (this.#onAccept?.(socket) === true) return
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      if (!secure && !c.http2) this.#trackHttp1(socket)
    })
    if (secure) {
      this.server.on('secureConnection', (socket: TLSSocket) => {
        if (!c.http2 || socket.alpnProtocol !== 'h2') this.#trackHttp1(socket)
      })
    }
  }

  get listening (): boolean { return this.server.listening }

  /** Where it listens: Node's answer, but a unix socket's public path rather than the private name it was bound under. */
  get address (): AddressInfo | string | undefined {
    return this.#unixPath ?? this.server.address() ?? undefined
  }

  /**
   * Listen on the address: on the socket the pool's source gives for it
   * (sockets.ts), else bind it. A unix socket is bound under a private
   * name and renamed into place: libuv removes the name a socket was bound
   * to when it closes, and the socket outlives this process when an upgrade
   * hands it on, so the file must not go then (`close(handOff)`).
   */
  async listen (address: NormalizedConfig['address'], sockets: ListenerContext['sockets']): Promise<void> {
    const given = sockets.take(address)
    if (typeof given === 'number') return await this.#listen({ fd: given })
    if (given !== undefined) return await this.#listen(given)
    if (address.kind === 'tcp') {
      await this.#listen({ host: address.host, port: address.port })
      if (listeningFd(this.server) !== undefined) this.#backlog = NODE_BACKLOG
      return
    }
    if (address.kind !== 'unix') throw new Error(`no socket was passed as ${formatAddress(address)}`)
    const path = address.path
    this.#unixPath = path
    const hidden = join(dirname(path), `.${basename(path)}.${process.pid}`)
    // The private name must fit a socket address (108 bytes on Linux); else bind the name itself.
    if (Buffer.byteLength(hidden) > 107) return await this.#listen({ path })
    if (existsSync(path)) throw explainListenError(Object.assign(new Error(`listen EADDRINUSE: address already in use ${path}`), { code: 'EADDRINUSE' }))
    await this.#listen({ path: hidden })
    renameSync(hidden, path)
  }

  #listen (options: object): Promise<void> {
    const server = this.server
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => { server.removeListener('listening', onListening); reject(explainListenError(err)) }
      const onListening = (): void => { server.removeListener('error', onError); resolve() }
      server.once('error', onError)
      server.once('listening', onListening)
      server.listen(options)
    }).then(() => this.#startSweep())
  }

  /** The accept queue's length now, when this server sets it (see #backlog); undefined otherwise. */
  get acceptQueue (): number | undefined {
    return this.#backlog === undefined ? undefined : this.#shortQueue ? SHEDDING_BACKLOG : this.#backlog
  }

  /**
   * Shorten the accept queue while the listener is overloaded (its queue of
   * requests stands), and give it back its length once it is calm: the
   * kernel then drops the SYNs of a flood's new connections (their clients
   * send them again a second later) instead of queueing them for seconds,
   * their requests sent, to be served after their clients gave up. Returns
   * the length when it changed it; undefined when it did not (already so,
   * a socket it does not set, or Node's handle refused).
   */
  shortenAcceptQueue (short: boolean): number | undefined {
    if (this.#backlog === undefined || short === this.#shortQueue || !this.server.listening) return undefined
    const length = short ? SHEDDING_BACKLOG : this.#backlog
    if (!setAcceptQueue(this.server, length)) {
      // Not usable here: the queue keeps its length, and no turn asks again.
      this.#backlog = undefined
      return undefined
    }
    this.#shortQueue = short
    return length
  }

  /** Call `listener` for each connection accepted from now on (undefined: stop); true from it: the connection was its own, closed. */
  watchAccepts (listener: ((socket: Socket) => boolean) | undefined): void {
    this.#onAccept = listener
  }

  /**
   * Where the listener's load shedding may connect to time its accept queue
   * (accept-probe.ts): on a plain HTTP/1 TCP socket this process bound (a
   * shared socket's accept may happen in another process; a TLS or HTTP/2
   * server would take the probe for a client that failed its handshake).
   */
  get probeTarget (): ProbeTarget | undefined {
    if (this.#backlog === undefined || !this.#http1Plain || !this.server.listening) return undefined
    const a = this.server.address()
    if (a === null || typeof a === 'string') return undefined
    const host = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '::1' : a.address
    return { host, port: a.port }
  }

  /** Timeouts of a live server; Node reads them per connection (and per check), so new values apply without a restart. */
  applyTimeouts (c: NormalizedConfig): void {
    this.server.setTimeout(c.connectionTimeout)
    this.#sendTimeout = c.sendTimeout
    // HTTP/1 connections read these (over HTTP/2 with TLS: the HTTP/1.1 fallback).
    const http = this.server as HttpServer
    http.keepAliveTimeout = c.keepAliveTimeout
    http.requestTimeout = c.requestTimeout
    http.headersTimeout = c.headersTimeout
    if (this.#sweep !== undefined) this.#startSweep()
  }

  /** New TLS material for a live server: new connections use it, open ones keep theirs. */
  applyTls (options: ServerTlsOptions): void {
    const server = this.server
    // https and http2's secure server are TLS servers; a plain one has no TLS to apply.
    if (!('setSecureContext' in server)) return
    const tls: TlsServer = server
    tls.setSecureContext(options)
    // setSecureContext() leaves these alone; the server reads them for each
    // new connection. Where Node does not let them change, a change was
    // refused before this (clientCertificatesRefusal()).
    setClientCertificates(tls, options.requestCert === true, options.rejectUnauthorized !== false)
  }

  /**
   * Stop accepting connections; resolves once the last one is gone. Node's
   * http close() first destroys every connection it deems idle (Node ≥ 19,
   * httpServerPreClose), and it deems a connection idle once its request
   * was read (nodejs/node#43890), whatever its response still has to send: a
   * large response to a slow reader lost its tail. The drain closes the
   * connections itself, so the listening socket is closed with net.Server's
   * close() (http, https and http2 servers are net.Servers), which closes
   * nothing else; once the last connection is gone, the server's own close()
   * clears what http keeps running for it (the timeouts' checking timer).
   */
  close (handOff = false): Promise<void> {
    this.#stopSweep()
    // Its length back before it goes: a successor may listen on this socket (an upgrade).
    this.shortenAcceptQueue(false)
    const server = this.server
    return new Promise<void>(resolve => {
      NetServer.prototype.close.call(server, () => { server.close(() => resolve()) })
    }).then(() => {
      // A successor serves on the socket file after a hand-off; else it goes with the listener, as Node would remove it.
      if (this.#unixPath !== undefined && !handOff) rmSync(this.#unixPath, { force: true })
    })
  }

  /** Destroy every connection and session still open. */
  destroyAll (): void {
    for (const session of this.sessions) session.destroy()
    for (const socket of this.http1) socket.destroy()
    for (const socket of this.sockets) socket.destroy()
  }

  #trackHttp1 (socket: Socket): void {
    const s = markSocket(socket)
    const http1 = this.http1
    http1.add(s)
    socket.once('close', () => http1.delete(s))
    this.onHttp1?.(s)
  }

  #startSweep (): void {
    this.#stopSweep()
    const timeout = this.#sendTimeout
    if (timeout <= 0) return
    const every = Math.max(50, Math.min(SWEEP_MS, Math.floor(timeout / 4)))
    this.#sweep = setInterval(() => {
      const now = Date.now()
      for (const socket of this.http1) {
        if (sendStalled(socket, now, timeout)) this.#onStall(socket)
      }
    }, every)
    this.#sweep.unref()
  }

  #stopSweep (): void {
    clearInterval(this.#sweep)
    this.#sweep = undefined
  }
}
