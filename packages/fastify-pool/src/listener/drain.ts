// The stop sequence of one listener's server: refuse, close, goodbye,
// finish, idle, cut. Kept apart from the listener so that the phases read top to bottom
// (docs/lifecycle.md draws them).
import type { ServerResponse } from 'node:http'
import { constants as h2 } from 'node:http2'
import { isIdle, lastResponse, lingerAfterLastResponse, lingeringClose, owed, responseDone, whenDone, type Http1Socket } from './connections.ts'
import { betweenRequests } from './node-internals.ts'
import type { Generation, Request, Response } from './generation.ts'
import type { NodeServer, ServerHandle } from './server.ts'

/** After its FIN, how long a closing connection keeps reading what its client still sends. */
export const LINGER_MS = 1000
/**
 * How long a keep-alive connection that is idle when the drain begins may
 * still bring a request (answered 503 with Connection: close) before it is
 * closed. A client sending back to back sends its next request within a
 * millisecond or so of the previous response; closing at once would cross it
 * on the wire.
 */
export const IDLE_GRACE_MS = 100

export interface DrainSubject {
  handle: ServerHandle
  /** The generation attached to the server's 'request' event. */
  current: Generation
  /** Older generations still finishing requests after a restart. */
  retiring: Iterable<Generation>
}

export interface DrainOptions {
  /** The one deadline, in milliseconds. */
  timeout: number
  /** Another process serves the same port: requests still arriving are served, with Connection: close. */
  handOff: boolean
  /** Over how many milliseconds the goodbyes to upgraded connections are spread (at most a quarter of the deadline). */
  closeWindow: number
}

/** What was still open at the deadline, and destroyed. */
export interface DrainCut {
  requests: number
  upgraded: number
}

/**
 * Close a server gracefully within `timeout` milliseconds. Resolves as soon
 * as the last connection is gone, with what was still owed at the deadline
 * (requests, and upgraded connections; all of them destroyed).
 */
export async function drain ({ handle, current, retiring }: DrainSubject, { timeout, handOff, closeWindow }: DrainOptions): Promise<DrainCut> {
  const server = handle.server
  const generations = [current, ...retiring]
  // 1. Refuse. A request that arrives from now on, on a connection still open,
  //    is answered 503 with Connection: close, so the client goes elsewhere.
  //    Handing off (another process serves the same port), it is served,
  //    with Connection: close: the client's next connection goes to the other.
  const late = handOff ? serveThenClose : refuse
  if (handOff) server.prependListener('request', late)
  else {
    server.removeListener('request', current.dispatch)
    server.on('request', late)
  }
  handle.draining = true
  handle.upgrades.refuse()
  // 2. No new connections; the handle's close() closes none of the open ones.
  const closed = handle.close(handOff)
  //    Goodbye: every generation's preClose hooks run now, as in Fastify's
  //    own close(), so a WebSocket plugin sends its close frames at once
  //    (spread over the window); the onClose hooks wait for the last connection.
  const reason = handOff ? 'handoff' : 'stop'
  for (const gen of generations) gen.farewell(reason, Math.min(closeWindow, Math.floor(timeout / 4))).catch(noop)
  // 3. Finish. Each HTTP/1 connection answers what it has, and its last
  //    response tells the client to close. Node then ends the connection,
  //    and that end becomes a lingering close.
  for (const socket of handle.http1) finishThenClose(server, socket)
  handle.onHttp1 = (socket) => { finishThenClose(server, socket); closeIfIdleLater(server, socket, Math.min(IDLE_GRACE_MS, timeout)) }
  //    HTTP/2 sessions get a GOAWAY: open streams finish, new ones are refused.
  for (const session of handle.sessions) session.close()
  // 4. Idle keep-alive connections close after a short grace, not after keepAliveTimeout.
  const grace = setTimeout(() => closeIdle(server, handle.http1), Math.min(IDLE_GRACE_MS, timeout))
  grace.unref()
  // 5. Cut. At the deadline whatever remains is destroyed, and counted.
  const cut: DrainCut = { requests: 0, upgraded: 0 }
  const deadline = setTimeout(() => {
    for (const socket of handle.http1) cut.requests += owed(socket)
    for (const gen of generations) {
      for (const stream of gen.streams ?? []) { cut.requests++; stream.close(h2.NGHTTP2_CANCEL) }
      cut.upgraded += gen.upgrades.destroy()
    }
    handle.destroyAll()
  }, timeout)
  deadline.unref()
  try {
    // The server's 'close': its handle is closed and its last connection is gone.
    await closed
  } finally {
    clearTimeout(deadline)
    clearTimeout(grace)
    handle.onHttp1 = undefined
    server.removeListener('request', late)
    if (handOff) server.removeListener('request', current.dispatch)
  }
  return cut
}

/** Handing off: the request is served by the listener's instance (the next listener), and its connection then closes. */
function serveThenClose (req: Request, res: Response): void {
  if (req.httpVersionMajor === 1) (res as ServerResponse).setHeader('connection', 'close')
}

/** Let a connection finish what it owes, then close it with a lingering close. */
function finishThenClose (server: NodeServer, socket: Http1Socket): void {
  lingerAfterLastResponse(socket, LINGER_MS)
  const last = lastResponse(socket)
  if (last === undefined || responseDone(last, socket)) return
  if (!last.headersSent) {
    // Only the last: a Connection: close on an earlier pipelined response
    // would make Node close the connection before the ones queued behind it.
    last.setHeader('connection', 'close')
  } else {
    // Its headers promised keep-alive, so the client may send again the
    // moment it has read it: once it is done, the connection gets the same
    // grace as an idle one (a request then is refused with Connection: close).
    whenDone(last, socket).then(() => closeIfIdleLater(server, socket, IDLE_GRACE_MS), noop)
  }
}

/**
 * Close the given sockets that are idle, with one look at Node's connection
 * list for all of them. A timer fires before the loop reads its sockets: a
 * request already in the kernel would look idle and be lost with the close
 * (a busy loop makes that window a whole turn). So the look is taken in the
 * check phase, after this turn's reads.
 */
function closeIdle (server: NodeServer, sockets: Iterable<Http1Socket>): void {
  setImmediate(closeIdleNow, server, sockets).unref()
}

function closeIdleNow (server: NodeServer, sockets: Iterable<Http1Socket>): void {
  const between = betweenRequests(server)
  for (const socket of sockets) {
    if (!isIdle(socket)) continue
    // Node knows whether the next request has begun to arrive; leave those to be refused.
    if (between !== undefined && !between.has(socket)) continue
    lingeringClose(socket, LINGER_MS)
  }
}

function closeIfIdleLater (server: NodeServer, socket: Http1Socket, grace: number): void {
  const timer = setTimeout(() => closeIdle(server, [socket]), grace)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}

const REFUSED = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The server is shutting down' })
const REFUSED_LENGTH = Buffer.byteLength(REFUSED)

/** Answer a request that arrives while the listener drains. */
export function refuse (req: Request, res: Response): void {
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': REFUSED_LENGTH }
  // Connection is forbidden in HTTP/2; there the session's GOAWAY says the same.
  if (req.httpVersionMajor === 1) headers.connection = 'close'
  ;(res as ServerResponse).writeHead(503, headers)
  res.end(REFUSED)
}

function noop (): void {}
