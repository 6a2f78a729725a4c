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
import type { AddressInfo, Socket } from 'node:net'

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
  }
} as const

export type NodeInternal = keyof typeof NODE_INTERNALS

const usable: Record<NodeInternal, boolean> = { parser: true, httpMessage: true, writeQueueSize: true, connections: true, destroySoon: true, listeningFd: true }

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
 * Close the server's listening socket without Node destroying the
 * connections it deems idle: http's close() calls closeIdleConnections()
 * (Node ≥ 19, lib/_http_server.js Server.prototype.close), which counts a
 * connection idle once its response called end(), before the bytes left. An
 * own property shadows the prototype's for that one call.
 */
export function closeKeepingConnections (server: { close: (cb: () => void) => unknown, closeIdleConnections?: () => void }, cb: () => void): void {
  if (typeof server.closeIdleConnections !== 'function') {
    server.close(cb)
    return
  }
  server.closeIdleConnections = noop
  server.close(cb)
  delete server.closeIdleConnections
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
  const seen: Record<NodeInternal, boolean> = { parser: false, httpMessage: false, writeQueueSize: false, connections: false, destroySoon: false, listeningFd: false }
  const server: HttpServer = createServer((req, res) => {
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
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const port = (server.address() as AddressInfo).port
    seen.listeningFd = (listeningFd(server) ?? -1) > 2
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

function noop (): void {}
