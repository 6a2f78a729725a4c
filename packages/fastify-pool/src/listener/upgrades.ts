// Connections that leave HTTP: an 'upgrade' (WebSocket) or a 'connect'
// (a tunnel). Node hands such a socket to the server's listeners for that
// event and forgets it: no parser, no response, nothing a drain can read.
//
// Every generation builds its own plugins on the one live server, and a
// plugin adds its 'upgrade' listener to that server (@fastify/websocket, a
// `ws` server in noServer mode). Left there, a handshake would reach every
// generation's listener at once. So the server carries one listener of ours
// per event, which hands the event to the generation serving at that moment;
// the listeners a generation's plugins add are moved into that generation as
// soon as they are added, and the sockets it upgraded are counted there,
// from the event until the socket closes. Nothing here runs per HTTP request.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Server, Socket } from 'node:net'
import { markUpgraded } from './connections.ts'

export const UPGRADE_EVENTS = ['upgrade', 'connect'] as const
export type UpgradeEventName = typeof UPGRADE_EVENTS[number]
/** A listener of the server's upgrade events. */
type EventListener = (...args: unknown[]) => void

/** What one generation serves of the upgrade events, and the connections it upgraded that are still open. */
export class Upgrades {
  readonly listeners: Record<UpgradeEventName, EventListener[]> = { upgrade: [], connect: [] }
  /** Upgraded connections still open (for TLS, the TLS socket). */
  readonly sockets = new Set<Duplex>()
  #idle: Array<() => void> = []

  get size (): number { return this.sockets.size }

  /** Count the socket as this generation's until it closes, then hand the event to its listeners. */
  handle (event: UpgradeEventName, server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const sockets = this.sockets
    if (!socket.destroyed) {
      sockets.add(socket)
      const waiting = this.#idle
      socket.once('close', () => {
        sockets.delete(socket)
        if (sockets.size === 0 && waiting.length > 0) for (const resolve of waiting.splice(0)) resolve()
      })
    }
    for (const listener of this.listeners[event]) listener.call(server, req, socket, head)
  }

  /** Resolves once every upgraded connection is closed. */
  idle (): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve()
    return new Promise(resolve => this.#idle.push(resolve))
  }

  /** Destroy what is still open; returns how many that was. */
  destroy (): number {
    let n = 0
    for (const socket of this.sockets) {
      if (socket.destroyed) continue
      n++
      socket.destroy()
    }
    return n
  }

  /** It serves no more: forget the plugins' listeners (they keep its instance alive). */
  release (): void {
    for (const event of UPGRADE_EVENTS) this.listeners[event] = []
  }
}

/**
 * The server's listeners for the upgrade events. One per event is attached
 * while the generation serving has a listener for it, and only then: Node
 * serves an `Upgrade:` request as a plain request when nobody listens for
 * 'upgrade', and destroys a CONNECT nobody listens for.
 */
export class UpgradeRouter {
  readonly #server: Server
  /** The generation serving now; upgrades go there. */
  #serving: Upgrades | undefined
  /** The generation being built; listeners added now are its own. */
  #building: Upgrades | undefined
  /** Set while the listener drains: handshakes are answered 503. */
  #refusing = false
  /** While a canary runs: which generation takes a handshake (canary.ts), and the canary's own. */
  #pick: ((req: IncomingMessage) => Upgrades) | undefined
  #also: Upgrades | undefined
  readonly #ours: Record<UpgradeEventName, EventListener>
  #sweepQueued = false

  constructor (server: Server) {
    this.#server = server
    const route = (event: UpgradeEventName): EventListener => (req, socket, head) => this.#route(event, req as IncomingMessage, socket as Duplex, head as Buffer)
    this.#ours = { upgrade: route('upgrade'), connect: route('connect') }
    // A listener is added after 'newListener' returns: move it from a
    // microtask, which runs before any socket can bring an event.
    server.on('newListener', (event: string | symbol) => {
      if ((event === 'upgrade' || event === 'connect') && !this.#sweepQueued) {
        this.#sweepQueued = true
        queueMicrotask(() => { this.#sweepQueued = false; this.sweep() })
      }
    })
  }

  /** Move every listener on the server that is not ours into the generation being built, else into the one serving. */
  sweep (): void {
    const into = this.#building ?? this.#serving
    for (const event of UPGRADE_EVENTS) {
      for (const listener of this.#server.rawListeners(event) as EventListener[]) {
        if (listener === this.#ours[event]) continue
        this.#server.removeListener(event, listener)
        // An unowned listener (none is being built or serving) is dropped: nothing could route to it.
        into?.listeners[event].push(listener)
      }
    }
  }

  /** Listeners added from now until the next call are those of `upgrades` (undefined: the build ended). */
  building (upgrades: Upgrades | undefined): void {
    this.sweep()
    this.#building = upgrades
  }

  /** From now on `upgrades` receives the upgrade events. */
  serve (upgrades: Upgrades | undefined): void {
    this.sweep()
    this.#serving = upgrades
    this.#pick = undefined
    this.#also = undefined
    this.#refusing = false
    this.#attach()
  }

  /** While a canary runs: `pick` says which of the serving generation and `canary` takes each handshake (until serve() again). */
  split (pick: (req: IncomingMessage) => Upgrades, canary: Upgrades): void {
    this.sweep()
    this.#pick = pick
    this.#also = canary
    this.#attach()
  }

  /** The drain: every handshake from now on is answered 503 with Connection: close. */
  refuse (): void {
    this.#refusing = true
  }

  #attach (): void {
    for (const event of UPGRADE_EVENTS) {
      const wanted = (this.#serving?.listeners[event].length ?? 0) + (this.#also?.listeners[event].length ?? 0) > 0
      const attached = this.#server.rawListeners(event).includes(this.#ours[event])
      if (wanted && !attached) this.#server.on(event, this.#ours[event])
      else if (!wanted && attached) this.#server.removeListener(event, this.#ours[event])
    }
  }

  #route (event: UpgradeEventName, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    markUpgraded(socket as Socket)
    const serving = this.#serving
    if (this.#refusing || serving === undefined) return refuseUpgrade(socket)
    const target = this.#pick === undefined ? serving : this.#pick(req)
    target.handle(event, this.#server, req, socket, head)
  }
}

const REFUSED = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The server is shutting down' })
const REFUSED_RESPONSE = `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(REFUSED)}\r\nConnection: close\r\n\r\n${REFUSED}`

/** The socket left HTTP with the handshake: answer it by hand, then close it once the answer is sent. */
function refuseUpgrade (socket: Duplex): void {
  if (socket.destroyed) return
  socket.on('error', noop)
  socket.end(REFUSED_RESPONSE)
}

function noop (): void {}

/** At most this many goodbyes per millisecond of a spread. */
const PER_MS = 1
const TICK_MS = 10

/**
 * Hold what is written to each socket (cork) until its turn: the goodbyes a
 * plugin's preClose writes to all its clients at once then leave spread
 * evenly over `window` ms, one per millisecond at most, so the clients do not
 * all reconnect in the same instant. Returns a function that starts the
 * release; it resolves once every socket was released.
 */
export function holdWrites (sockets: Iterable<Duplex>, window: number): () => Promise<void> {
  const held = [...sockets].filter(s => !s.destroyed)
  for (const socket of held) socket.cork()
  return () => new Promise<void>(resolve => {
    const span = Math.min(window, Math.ceil(held.length / PER_MS))
    if (span < TICK_MS || held.length <= 1) {
      for (const socket of held) socket.uncork()
      return resolve()
    }
    const began = Date.now()
    let released = 0
    const tick = (): void => {
      const due = Math.min(held.length, Math.ceil(held.length * (Date.now() - began + TICK_MS) / span))
      while (released < due) held[released++]!.uncork()
      if (released >= held.length) return resolve()
      setTimeout(tick, TICK_MS).unref()
    }
    tick()
  })
}
