// Node's private fields that make the drain exact and cheap, behind one door.
// Nothing else in the library reads a private field of Node's.
//
// Each accessor says what it relies on, with the Node source it comes from.
// Before the first listener of a process starts, probeNodeInternals() checks
// each field on a real loopback exchange. A field that does not behave as
// expected (a Node release renamed it) is not used: the pool takes a
// conservative path that is always correct, and one warning names the field
// and the Node version. FASTIFY_POOL_NODE_INTERNALS=off takes every
// conservative path on purpose (the test suite runs the drain tests so).
import { createServer, request, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import { getSystemErrorName } from 'node:util'

/** Each private field, and what the pool does when it cannot use it. */
export const NODE_INTERNALS = {
  parser: {
    field: 'socket.parser.incoming',
    without: 'each response tells when it is done (a listener per response) instead of the parser telling'
  },
  httpMessage: {
    field: 'socket._httpMessage',
    without: 'each response tells when it is done (a listener per response) instead of the socket telling'
  },
  writeQueueSize: {
    field: 'socket._handle.writeQueueSize',
    without: 'the send timeout is not enforced (a slow reader is never cut for want of a measure)'
  },
  connections: {
    field: "server[Symbol('http.server.connections')]",
    without: 'a connection with nothing owed counts as between two requests'
  },
  destroySoon: {
    field: 'socket.destroySoon',
    without: 'a connection ends with end() after its last response, without the lingering close'
  },
  listeningFd: {
    field: 'server._handle.fd',
    without: 'an upgrade (fastify-pool upgrade) is refused: the listening sockets cannot be handed to a successor'
  },
  serverHandles: {
    field: 'net._createServerHandle',
    without: "with --workers the workers share their ports through node:cluster's primary (round-robin), and an upgrade of the workers is refused: the primary holds no socket to hand on"
  },
  parserData: {
    field: "the HTTP parser's 'data' listener on a socket",
    without: 'a closing connection ends without reading (and dropping) what its client still sends'
  },
  tlsServerOptions: {
    field: 'tls.Server requestCert and rejectUnauthorized',
    without: 'a running HTTPS listener refuses a change of requestCert or rejectUnauthorized (stop and start it)'
  },
  acceptQueue: {
    field: 'server._handle.listen(backlog)',
    without: "a shedding listener's accept queue keeps its length (511): a flood's new connections wait there for seconds, and their requests are served after their clients gave up"
  }
} as const

export type NodeInternal = keyof typeof NODE_INTERNALS

const usable: Record<NodeInternal, boolean> = { parser: true, httpMessage: true, writeQueueSize: true, connections: true, destroySoon: true, listeningFd: true, serverHandles: true, parserData: true, tlsServerOptions: true, acceptQueue: true }

/** Which fields are in use (all, until a probe or the switch says otherwise). */
export function nodeInternals (): Readonly<Record<NodeInternal, boolean>> { return usable }

/** True while the parser and the socket tell what a connection owes (the exact path without a listener per response). */
export function exactAccounting (): boolean { return usable.parser && usable.httpMessage }

interface ParserSocket extends Socket {
  // lib/_http_server.js connectionListenerInternal sets socket.parser; the
  // parser keeps the request it is serving as `incoming` until its response
  // is done (parserOnIncoming, resOnFinish), and it is freed (null) when
  // the socket leaves HTTP (onParserExecuteCommon on an upgrade).
  parser?: { incoming?: IncomingMessage | null } | null
  // lib/_http_server.js: ServerResponse.assignSocket() sets it to the
  // response that writes to the socket now; the next queued one takes over
  // in resOnFinish.
  _httpMessage?: ServerResponse | null
  // lib/net.js: the libuv stream handle; writeQueueSize is the bytes libuv
  // still holds for the kernel (src/stream_wrap.cc).
  _handle?: { writeQueueSize?: number } | null
}

/** The request Node's parser is serving on this socket (its last one, until that one's response is done). */
export function parserRequest (socket: Socket): IncomingMessage | null | undefined {
  return (socket as ParserSocket).parser?.incoming
}

/** False once the socket left HTTP (upgraded) or its parser was freed. */
export function hasParser (socket: Socket): boolean {
  return (socket as ParserSocket).parser != null
}

/** The response writing to this socket now. */
export function writingResponse (socket: Socket): ServerResponse | null | undefined {
  return (socket as ParserSocket)._httpMessage
}

/** Bytes libuv still holds for the kernel; undefined when that cannot be read. */
export function writeQueueSize (socket: Socket): number | undefined {
  if (!usable.writeQueueSize) return undefined
  const size = (socket as ParserSocket)._handle?.writeQueueSize
  return typeof size === 'number' ? size : undefined
}

interface ConnectionsList { idle?: () => Array<{ socket: Socket }>, active?: () => Array<{ socket: Socket }> }

// lib/_http_server.js: the server's list of HTTP connections
// (kConnections, a ConnectionsList from src/node_http_parser.cc), which
// knows whether a connection's next request has begun to arrive.
function connectionsList (server: object): ConnectionsList | undefined {
  const key = Object.getOwnPropertySymbols(server).find(s => s.description === 'http.server.connections')
  const list = key === undefined ? undefined : (server as Record<symbol, ConnectionsList | undefined>)[key]
  return typeof list?.idle === 'function' ? list : undefined
}

/**
 * The sockets Node's own list of HTTP connections (http and https servers,
 * and HTTP/1.1 over http2 with allowHTTP1) has between two requests;
 * undefined when the list cannot be used (then every socket with nothing
 * owed counts as between requests).
 */
export function betweenRequests (server: object): Set<Socket> | undefined {
  if (!usable.connections) return undefined
  const list = connectionsList(server)
  if (list?.idle === undefined) return undefined
  return new Set(list.idle().map(parser => parser.socket))
}

/**
 * Make Node's close after a `Connection: close` response (resOnFinish calls
 * socket.destroySoon() when the socket has one, else socket.end()) run `fn`.
 */
export function onDestroySoon (socket: Socket, fn: (this: Socket) => void): void {
  socket.destroySoon = fn
}

/**
 * Stop Node's HTTP parser from reading a socket, so that what its client
 * still sends is read by `onData` (and dropped) instead of parsed into new
 * requests. lib/_http_server.js connectionListenerInternal adds the parser's
 * listener (socketOnData) with socket.on('data'); with a native stream
 * handle the parser also consumes it in C++ (parser.consume), and a 'data'
 * listener of JavaScript's own makes the handle give the bytes to
 * JavaScript instead. Every 'data' listener goes: after the last response
 * nothing else of the server's may read the socket. Returns false (and
 * does nothing) when not usable (probed: `parserData`).
 */
export function stopParsing (socket: Socket, onData: (chunk: Buffer) => void): boolean {
  if (!usable.parserData) return false
  socket.removeAllListeners('data')
  socket.on('data', onData)
  socket.resume()
  return true
}

interface TlsServerFields { requestCert?: unknown, rejectUnauthorized?: unknown }

/**
 * Ask for (or stop asking for) client certificates on a live TLS server.
 * setSecureContext() takes only the secure context's options; the server
 * keeps requestCert and rejectUnauthorized as own fields, set by its
 * constructor (lib/_tls_wrap.js Server) and read for each new connection
 * (tlsConnectionListener passes them to the TLSSocket). Returns false (and
 * changes nothing) when not usable (probed: `tlsServerOptions`).
 */
export function setClientCertificates (server: object, requestCert: boolean, rejectUnauthorized: boolean): boolean {
  if (!usable.tlsServerOptions) return false
  Object.assign(server as TlsServerFields, { requestCert, rejectUnauthorized })
  return true
}

/** True when setClientCertificates() can change them on a live server (probed). */
export function clientCertificatesLive (): boolean { return usable.tlsServerOptions }

/** The constructor keeps both as own boolean fields (what the connection listener reads). */
function probeTlsServerOptions (): boolean {
  const fields = new TlsServer({ requestCert: true, rejectUnauthorized: false }) as TlsServerFields
  return Object.hasOwn(fields, 'requestCert') && fields.requestCert === true && Object.hasOwn(fields, 'rejectUnauthorized') && fields.rejectUnauthorized === false
}

let probed: Promise<NodeInternal[]> | undefined

/**
 * Check every field once per process (later calls share the first's
 * result); resolves with the fields that are not used. `warn` is called once
 * per process, when there are some.
 */
export function probeNodeInternals (warn: (message: string) => void = processWarning): Promise<NodeInternal[]> {
  probed ??= (process.env.FASTIFY_POOL_NODE_INTERNALS === 'off' ? Promise.resolve(Object.keys(usable) as NodeInternal[]) : probe())
    .then((failed) => {
      for (const name of failed) usable[name] = false
      if (failed.length > 0) warn(warningText(failed))
      return failed
    })
  return probed
}

function warningText (failed: NodeInternal[]): string {
  const why = process.env.FASTIFY_POOL_NODE_INTERNALS === 'off' ? 'FASTIFY_POOL_NODE_INTERNALS=off' : `Node ${process.version} does not have them as expected`
  return `fastify-pool does not use ${failed.map(f => NODE_INTERNALS[f].field).join(', ')} (${why}): ${failed.map(f => NODE_INTERNALS[f].without).join('; ')}`
}

function processWarning (message: string): void {
  process.emitWarning(message, { code: 'FST_POOL_NODE_INTERNALS' })
}

/** One request over loopback, with Connection: close; each field is looked at where the drain would. */
async function probe (): Promise<NodeInternal[]> {
  const seen: Record<NodeInternal, boolean> = { parser: false, httpMessage: false, writeQueueSize: false, connections: false, destroySoon: false, listeningFd: false, serverHandles: probeServerHandles(), parserData: false, tlsServerOptions: probeTlsServerOptions(), acceptQueue: false }
  const server: HttpServer = createServer((req, res) => {
    // The parser probe's keep-alive exchange (probeParserData()).
    if (req.url === '/first') return res.writeHead(200, { 'content-length': 2 }).end('ok')
    const socket = req.socket
    seen.parser = parserRequest(socket) === req
    seen.httpMessage = writingResponse(socket) === res
    seen.writeQueueSize = typeof (socket as ParserSocket)._handle?.writeQueueSize === 'number'
    const list = connectionsList(server)
    seen.connections = list?.idle !== undefined && !list.idle().some(p => p.socket === socket)
    const original = socket.destroySoon
    onDestroySoon(socket, function destroySoon (this: Socket) {
      seen.destroySoon = true
      original.call(this)
    })
    res.writeHead(200, { connection: 'close', 'content-length': 2 })
    res.end('ok')
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      // exclusive: in a cluster worker, a socket of its own (not the primary's, which has no descriptor here).
      server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve())
    })
    const port = (server.address() as AddressInfo).port
    seen.listeningFd = (listeningFd(server) ?? -1) > 2
    // Shortened and set back before the request below: it must still be accepted.
    seen.acceptQueue = setAcceptQueue(server, 16) && setAcceptQueue(server, 511)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the probe request took over 5 s')), 5000)
      timer.unref()
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.resume()
        res.once('end', () => { clearTimeout(timer); resolve() })
      })
      req.once('error', (err) => { clearTimeout(timer); reject(err) })
      req.end()
    })
    seen.parserData = await probeParserData(server, port)
    // The server closes the connection once the response is done: wait for that close.
    await new Promise<void>(resolve => server.close(() => resolve()))
  } catch {
    // Loopback itself failed (a sandbox without it): nothing was learned, keep the fields.
    server.close()
    return []
  }
  return (Object.keys(seen) as NodeInternal[]).filter(k => !seen[k])
}

/**
 * A keep-alive request on a raw socket; once its response is done, the
 * parser is stopped (stopParsing()) and a second request sent: it must reach
 * the 'data' listener and not the server as a request.
 */
async function probeParserData (server: HttpServer, port: number): Promise<boolean> {
  let requests = 0
  let dropped = false
  const onRequest = (): void => { requests++ }
  server.on('request', onRequest)
  const socket = net.connect({ host: '127.0.0.1', port })
  try {
    return await new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the parser probe took over 5 s')), 5000)
      timer.unref()
      socket.once('error', (err) => { clearTimeout(timer); reject(err) })
      server.once('request', (req: IncomingMessage, res: ServerResponse) => {
        const served = req.socket
        res.once('finish', () => {
          const stopped = stopParsing(served, () => {
            dropped = true
            // A request the parser still saw would have been emitted before the data reached us, or in this turn.
            setImmediate(() => { clearTimeout(timer); resolve(requests === 1) })
          })
          if (!stopped) { clearTimeout(timer); resolve(false) }
        })
      })
      let answered = false
      socket.on('data', () => {
        if (answered) return
        answered = true
        socket.write('GET /second HTTP/1.1\r\nhost: probe\r\n\r\n')
      })
      socket.write('GET /first HTTP/1.1\r\nhost: probe\r\n\r\n')
    }) && dropped
  } finally {
    server.removeListener('request', onRequest)
    socket.destroy()
  }
}

/**
 * The descriptor of a listening server's socket, to hand to a successor
 * process (an upgrade). lib/net.js keeps the libuv handle as `_handle`
 * (Server.prototype._listen2); its `fd` getter is LibuvStreamWrap::GetFD
 * (src/stream_wrap.cc), the descriptor on Unix. Undefined when it is not there
 * or not usable (probed: `listeningFd`).
 */
export function listeningFd (server: object): number | undefined {
  if (!usable.listeningFd) return undefined
  const fd = (server as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd > 2 ? fd : undefined
}

/**
 * Set the length of a listening server's accept queue (listen(2)'s backlog)
 * while it listens. lib/net.js setupListenHandle calls
 * `this._handle.listen(backlog)` once (src/tcp_wrap.cc TCPWrap::Listen, then
 * libuv's uv_listen, which calls listen(2) on the socket and keeps watching
 * it); called again, listen(2) on a listening socket sets the new length
 * (Linux: connections already queued stay). Returns false when not usable
 * (probed: `acceptQueue`) or when it failed.
 */
export function setAcceptQueue (server: object, backlog: number): boolean {
  if (!usable.acceptQueue) return false
  const handle = (server as { _handle?: { listen?: (backlog: number) => unknown } | null })._handle
  return typeof handle?.listen === 'function' && handle.listen(backlog) === 0
}

/** A listening socket's handle of Node's own (a TCP or Pipe wrap), as net.Server.listen() takes it. */
export interface ListeningHandle {
  fd: number
  close: () => void
  // src/tcp_wrap.cc TCPWrap::GetSockName: fills `out` with address, family and port; 0 or a negative errno.
  getsockname?: (out: { address?: string, port?: number }) => number
}

interface ServerHandleMaker {
  // lib/net.js createServerHandle(address, port, addressType, fd, flags),
  // exported as net._createServerHandle (it is what node:cluster's primary
  // binds with). It binds (it does not listen) and returns the handle, or a
  // negative errno number. With `fd`, it wraps that descriptor (a TCP or
  // Pipe wrap, from its type) instead of binding.
  _createServerHandle?: (address: string | null, port: number | null, addressType: number | null, fd?: number, flags?: number) => unknown
}

function makeHandle (...args: Parameters<NonNullable<ServerHandleMaker['_createServerHandle']>>): ListeningHandle | number {
  const make = (net as ServerHandleMaker)._createServerHandle
  if (typeof make !== 'function') return -1
  const made = make(...args)
  if (typeof made === 'number') return made
  const handle = made as Partial<ListeningHandle> | null
  return handle !== null && typeof handle === 'object' && typeof handle.fd === 'number' && typeof handle.close === 'function' ? handle as ListeningHandle : -1
}

function probeServerHandles (): boolean {
  const bound = makeHandle('127.0.0.1', 0, 4)
  if (typeof bound === 'number') return false
  try {
    const name: { port?: number } = {}
    // Wrapping a descriptor (what a worker does with the one it is given) is
    // the path listen({ fd }) takes: not tried here, as a second handle of
    // the same descriptor would close it twice.
    return bound.fd > 2 && bound.getsockname?.(name) === 0 && typeof name.port === 'number' && name.port > 0
  } finally {
    bound.close()
  }
}

/**
 * A TCP socket bound (not listening) to `host` (an IP address; null: every
 * address, IPv6 and IPv4) and `port`, for the workers to accept on
 * together. Throws an Error with the errno's code (EADDRINUSE, EACCES, ...).
 * Only when `serverHandles` is usable.
 */
export function bindTcpHandle (host: string | null, port: number, family: 4 | 6): ListeningHandle {
  const made = makeHandle(host, port, host === null ? null : family)
  let code: string
  if (typeof made === 'number') {
    code = made < 0 ? getSystemErrorName(made) : 'EINVAL'
  } else {
    // libuv keeps a bind's EADDRINUSE for the listen() that follows (deps/uv
    // src/unix/tcp.c, uv__tcp_bind: delayed_error), and the workers listen,
    // not this process: a socket left unbound is how it shows here.
    if (port === 0 || boundPort(made) === port) return made
    made.close()
    code = 'EADDRINUSE'
  }
  throw Object.assign(new Error(`listen ${code}: address ${host ?? '::'}:${port}`), { code, syscall: 'listen', address: host ?? '::', port })
}

/** The port a bound TCP handle has (the one the kernel chose for port 0). */
export function boundPort (handle: ListeningHandle): number | undefined {
  const name: { port?: number } = {}
  return handle.getsockname?.(name) === 0 ? name.port : undefined
}

/**
 * The handle to listen on a listening socket's descriptor with: in a
 * cluster worker, `server.listen({ fd })` is sent to the primary, which
 * would serve its own descriptor of that number (lib/net.js
 * listenInCluster); a handle object is listened on in this process
 * (`exclusive`). Undefined when Node cannot make one (a primary that
 * found `serverHandles` unusable hands no descriptor to its workers).
 */
export function handleForFd (fd: number): ListeningHandle | undefined {
  if (!usable.serverHandles) return undefined
  const made = makeHandle(null, null, null, fd)
  return typeof made === 'number' ? undefined : made
}
