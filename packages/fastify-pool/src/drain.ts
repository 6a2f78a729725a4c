// The stop sequence of one listener's server: refuse, finish, close, cut.
// Kept apart from the listener so that the order of the phases reads top to
// bottom in one function (docs/lifecycle.md draws it).
import type { Server as HttpServer, ServerResponse } from 'node:http'
import type { Http2SecureServer, Http2Server, Http2Session } from 'node:http2'
import type { Socket } from 'node:net'
import type { Generation, Request, Response } from './generation.ts'

export type NodeServer = HttpServer | Http2Server | Http2SecureServer

export interface DrainSubject {
  server: NodeServer
  /** Every TCP connection the server accepted and that is still open. */
  sockets: ReadonlySet<Socket>
  /** Every HTTP/2 session still open. */
  sessions: ReadonlySet<Http2Session>
  /** The generation attached to the server's 'request' event. */
  current: Generation
  /** Older generations still finishing requests after a restart. */
  retiring: Iterable<Generation>
}

/**
 * Close a server gracefully within `timeout` milliseconds. Resolves with the
 * number of requests still in flight at the deadline (their connections are
 * destroyed), as soon as the last connection is gone.
 */
export async function drain ({ server, sockets, sessions, current, retiring }: DrainSubject, timeout: number): Promise<number> {
  const generations = [current, ...retiring]
  // 1. A request that arrives from now on, on a connection still open, is
  //    refused: 503 and Connection: close, so the client retries elsewhere.
  server.removeListener('request', current.dispatch)
  server.on('request', refuse)
  // 2. Requests in flight finish; their clients are told not to reuse the
  //    connection, and each connection is closed as soon as it falls idle.
  const onSettle = (): void => closeIdle(server)
  for (const gen of generations) {
    gen.closeAfterResponse()
    gen.onSettle = onSettle
  }
  // 3. No new connections. Idle keep-alive connections close now: waiting for
  //    keepAliveTimeout would hold stop() for a minute. HTTP/2 sessions get a
  //    GOAWAY and close once their open streams end.
  const closed = new Promise<void>(resolve => server.close(() => resolve()))
  closeIdle(server)
  for (const session of sessions) session.close()
  // 4. At the deadline whatever remains is destroyed, and counted.
  let cut = 0
  const timer = setTimeout(() => {
    for (const gen of generations) cut += gen.cut()
    for (const session of sessions) session.destroy()
    for (const socket of sockets) socket.destroy()
  }, timeout)
  timer.unref()
  try {
    // The server's 'close' event: its handle is closed and its last connection is gone.
    await closed
  } finally {
    clearTimeout(timer)
    server.removeListener('request', refuse)
    for (const gen of generations) gen.onSettle = undefined
  }
  return cut
}

/**
 * Destroy the connections that have no request in progress. Node's own check
 * (nodejs/node#60617) skips a connection whose next request has begun to
 * arrive, so that request is answered (by refuse) rather than reset. It is
 * safe to call from a response's 'close' event: Node emits it on the tick
 * after it detached the response from the socket, so the socket counts as idle.
 */
export function closeIdle (server: NodeServer): void {
  // http/https servers, and http2 secure servers with allowHTTP1 (for their
  // HTTP/1.1 connections), track connections; plain h2c servers do not.
  (server as HttpServer).closeIdleConnections?.()
}

const REFUSED = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The server is shutting down' })

/** Answer a request that arrives while the listener drains. */
export function refuse (req: Request, res: Response): void {
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(REFUSED) }
  // Connection is forbidden in HTTP/2; there the session's GOAWAY says the same.
  if (req.httpVersionMajor === 1) headers.connection = 'close'
  ;(res as ServerResponse).writeHead(503, headers)
  res.end(REFUSED)
}
