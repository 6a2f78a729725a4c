// What an HTTP/1 connection still owes its client, read from the connection
// itself when a drain or a swap asks, and how to close one without a reset.
//
// Nothing here allocates per request. The dispatch numbers each response and
// links it from its request, objects Node made for that request and that die
// with it; the rest runs only when a stop or a restart looks. Node keeps the
// last request it parsed on a connection (`socket.parser.incoming`) until
// that request's response is done, and HTTP/1 answers a connection's
// requests in order: so the last request's response tells when everything
// before it is done, and the difference of two numbers how many responses
// are still owed. Nothing long-lived (the socket) points at a response: such
// a pointer kept each response alive past its end and into the old space.
//
// The parser and the socket's current response are Node's private fields
// (node-internals.ts). Where a Node release changed them, each response
// tells when it is done instead (a listener per response): slower, as exact.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { exactAccounting, hasParser, onDestroySoon, parserRequest, stopParsing, writeQueueSize, writingResponse } from './node-internals.ts'

const kCount = Symbol('fastify-pool.dispatched')
const kRes = Symbol('fastify-pool.response')
const kSeq = Symbol('fastify-pool.sequence')
const kSent = Symbol('fastify-pool.sent')
const kQueued = Symbol('fastify-pool.queued')
const kStalled = Symbol('fastify-pool.stalledSince')
const kLinger = Symbol('fastify-pool.lingering')
// Without the parser: responses done on this socket, its last one, and whether it left HTTP.
const kDone = Symbol('fastify-pool.done')
const kLast = Symbol('fastify-pool.last')
const kUpgraded = Symbol('fastify-pool.upgraded')
const kCounted = Symbol('fastify-pool.counted')

/** A socket HTTP/1 runs on, with the marks this module keeps on it. */
export interface Http1Socket extends Socket {
  [kCount]: number
  [kSent]: number
  [kQueued]: number
  [kStalled]: number
  [kLinger]: boolean
  [kDone]: number
  [kLast]: Http1Response | undefined
  [kUpgraded]: boolean
}

export interface Http1Response extends ServerResponse {
  [kSeq]: number
  [kCounted]?: boolean
}

interface Http1Request extends IncomingMessage {
  [kRes]?: Http1Response
}

/** Give a new HTTP/1 socket its marks, all at once, so every socket has the same shape. */
export function markSocket (socket: Socket): Http1Socket {
  const s = socket as Http1Socket
  s[kCount] = 0
  s[kSent] = 0
  s[kQueued] = 0
  s[kStalled] = 0
  s[kLinger] = false
  s[kDone] = 0
  s[kLast] = undefined
  s[kUpgraded] = false
  return s
}

/** The socket left HTTP (an 'upgrade' or a 'connect'): it owes no response, and it is never idle. */
export function markUpgraded (socket: Socket): void {
  (socket as Http1Socket)[kUpgraded] = true
}

/** The request listener for HTTP/1: number the response, link it from its request, hand it on. */
export function http1Dispatch (handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  if (!exactAccounting()) return countingDispatch(handler)
  return function dispatch (req, res) {
    const socket = req.socket as Http1Socket
    const seq = (socket[kCount] ?? 0) + 1
    socket[kCount] = seq
    ;(res as Http1Response)[kSeq] = seq
    ;(req as Http1Request)[kRes] = res as Http1Response
    handler(req, res)
  }
}

/**
 * Without the parser: each response tells when it is done, and the socket
 * keeps its last one until then. HTTP/1 answers in order, so the responses
 * done are always the first ones.
 */
function countingDispatch (handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return function dispatch (req, res) {
    const socket = req.socket as Http1Socket
    const r = res as Http1Response
    const seq = (socket[kCount] ?? 0) + 1
    socket[kCount] = seq
    r[kSeq] = seq
    r[kCounted] = false
    socket[kLast] = r
    r.once('finish', countDone)
    r.once('close', countDone)
    handler(req, res)
  }
}

function countDone (this: Http1Response): void {
  if (this[kCounted] === true) return
  this[kCounted] = true
  // Node detaches the response from its socket before 'finish' reaches us; its request keeps it.
  const socket = this.req?.socket as Http1Socket | undefined
  if (socket == null) return
  socket[kDone] = (socket[kDone] ?? 0) + 1
  if (socket[kLast] === this) socket[kLast] = undefined
}

/** The response of the last request dispatched on this socket, while it is not done; else undefined. */
export function lastResponse (socket: Http1Socket): Http1Response | undefined {
  if (!exactAccounting()) return socket[kLast]
  return (parserRequest(socket) as Http1Request | null | undefined)?.[kRes]
}

/**
 * A response is done when its last byte was handed to the kernel ('finish',
 * which Node emits from the write callback of the last chunk, not at end()),
 * when it was closed without finishing, or when its connection is gone (a
 * pipelined response still queued never gets a 'close' of its own).
 */
export function responseDone (res: ServerResponse, socket: Socket): boolean {
  return res.writableFinished || res.destroyed || socket.destroyed
}

/**
 * How many responses this socket still owes, up to and including `upTo`
 * (default: its last): from the one writing now to that one, in order.
 */
export function owed (socket: Http1Socket, upTo: Http1Response | undefined = lastResponse(socket)): number {
  if (upTo === undefined || responseDone(upTo, socket)) return 0
  if (!exactAccounting()) return Math.max(1, upTo[kSeq] - socket[kDone])
  const current = writingResponse(socket)
  // A response Node wrote by itself (a 400 for a missing Host, a 417) has no number.
  const from = (current as Http1Response | null | undefined)?.[kSeq]
  if (from === undefined) return 1
  return Math.max(1, upTo[kSeq] - from + 1)
}

/** Resolves once `res` is done (see responseDone). */
export function whenDone (res: ServerResponse, socket: Socket): Promise<void> {
  if (responseDone(res, socket)) return Promise.resolve()
  return new Promise(resolve => {
    const settle = (): void => {
      res.removeListener('finish', settle)
      res.removeListener('close', settle)
      socket.removeListener('close', settle)
      resolve()
    }
    res.once('finish', settle)
    res.once('close', settle)
    socket.once('close', settle)
  })
}

/** True when the socket speaks HTTP/1, owes nothing and is not already closing. */
export function isIdle (socket: Http1Socket): boolean {
  const http = exactAccounting() ? hasParser(socket) : !socket[kUpgraded]
  return http && !socket.destroyed && !socket[kLinger] && owed(socket) === 0 && socket.writable
}

/**
 * Lingering close, as nginx does it: send what is buffered, then a FIN, and
 * keep reading (and dropping) what the client still sends until it closes
 * its side or `lingerMs` pass. Closing with unread bytes in the kernel's
 * receive buffer makes it answer with a reset, which can also discard a
 * response the client has not read yet. The timer starts once the write side
 * is flushed, so a slow reader still gets every byte (the send timeout and
 * the drain deadline bound that).
 */
export function lingeringClose (socket: Socket, lingerMs: number): void {
  const s = socket as Http1Socket
  if (s.destroyed || s[kLinger]) return
  s[kLinger] = true
  // What the client still sends is read and dropped, not parsed into
  // requests (node-internals.ts); where Node does not let that be done, the
  // connection ends as Node would end it, without reading.
  stopParsing(s, discard)
  let timer: NodeJS.Timeout | undefined
  const destroy = (): void => { s.destroy() }
  const flushed = (): void => {
    if (s.readableEnded) return destroy()
    timer = setTimeout(destroy, lingerMs)
    timer.unref()
  }
  s.once('end', () => { if (s.writableFinished) destroy() })
  s.once('close', () => clearTimeout(timer))
  if (s.writableFinished) flushed()
  else s.once('finish', flushed)
  s.end()
}

function discard (): void {}

/** Node calls socket.destroySoon() after a `Connection: close` response; during a drain that becomes a lingering close. */
export function lingerAfterLastResponse (socket: Socket, lingerMs: number): void {
  onDestroySoon(socket, function lingerSoon (this: Socket) { lingeringClose(this, lingerMs) })
}

/**
 * Send timeout: a socket with bytes waiting to be written that made no
 * progress for `timeout` ms belongs to a client that stopped reading.
 * Progress is a write completing (`bytesWritten - writableLength` grows) or
 * the kernel accepting part of a large one (libuv's `writeQueueSize`
 * shrinks); the app writing more is not. Called about once a second for
 * every HTTP/1 socket; returns true when the socket should be destroyed.
 */
export function sendStalled (socket: Http1Socket, now: number, timeout: number): boolean {
  const pending = socket.writableLength
  if (pending === 0) {
    socket[kStalled] = 0
    return false
  }
  const completed = socket.bytesWritten - pending
  const queued = writeQueueSize(socket)
  // Without libuv's figure a large write's progress cannot be seen: never cut for want of a measure.
  if (queued === undefined) return false
  if (socket[kStalled] === 0 || completed !== socket[kSent] || queued < socket[kQueued]) {
    socket[kSent] = completed
    socket[kQueued] = queued
    socket[kStalled] = now
    return false
  }
  socket[kQueued] = queued
  return now - socket[kStalled] >= timeout
}
