// How long a new connection waits in a listening socket's accept queue,
// measured (docs/overload.md, "Connections that wait in the kernel").
//
// libuv accepts one connection per listening socket per loop turn, and the
// kernel queues the rest, each with the request its client sent as soon as
// the handshake was done: a flood of clients that open a connection per
// request waits there, unseen by the listener's queue of requests. Nothing
// tells the process how long that queue is, nor when a connection joined
// it. So, while connections come often, the listener now and then connects
// to itself and times its own connection from connect() to its accept: the
// queue is first in, first out, and the probe waits behind every connection
// queued before it, as the next client would. Its local port is known only
// once its 'connect' event ran, which may come after the server accepted
// it: the ports accepted meanwhile are kept until then.
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** Where the probe connects: the listener's own address (loopback for a wildcard), or its unix socket. */
export type ProbeTarget = { host: string, port: number } | { path: string }

/** Connections accepted between two probes, at least: a listener that gets few does not probe (each probe is one more). */
const ACCEPTS_PER_PROBE = 64
/** A probe never accepted goes after this long (its wait is then at least this). */
const PROBE_TIMEOUT_MS = 5000
/** Ports accepted while the probe's own is not known yet, at most. */
const SEEN = 256

interface Probe { at: number, client: Socket, port: number | undefined, seen: Array<[number | undefined, number, Socket]> }

export class AcceptProbe {
  readonly #target: () => ProbeTarget | undefined
  /** Told of each wait measured, in ms, and of the wait so far of a probe not yet accepted. */
  readonly #onWait: (ms: number, now: number) => void
  /** How long between two probes at least, ms (the listener's target). */
  every: number
  #lastAt = -Infinity
  #accepts = 0
  #probe: Probe | undefined

  constructor (target: () => ProbeTarget | undefined, every: number, onWait: (ms: number, now: number) => void) {
    this.#target = target
    this.every = every
    this.#onWait = onWait
  }

  /** A connection was accepted: true when it was the probe (then closed), else false; may start a probe. */
  accepted (socket: Socket): boolean {
    const now = performance.now()
    const probe = this.#probe
    if (probe === undefined) {
      if (++this.#accepts >= ACCEPTS_PER_PROBE && now - this.#lastAt >= this.every) this.#start(now)
      return false
    }
    if (probe.port === undefined) {
      if (probe.seen.length < SEEN) probe.seen.push([socket.remotePort, now, socket])
      return false
    }
    if (socket.remotePort === probe.port && isLoopback(socket)) {
      socket.destroy()
      this.#done(probe, now - probe.at, now)
      return true
    }
    // Not accepted yet: its wait so far is a lower bound.
    this.#onWait(now - probe.at, now)
    return false
  }

  #start (now: number): void {
    const target = this.#target()
    if (target === undefined) return
    this.#lastAt = now
    this.#accepts = 0
    const client = connect(target)
    const probe: Probe = { at: now, client, port: undefined, seen: [] }
    this.#probe = probe
    // It must not keep a process alive, nor stay if it is never accepted.
    client.unref()
    client.setTimeout(PROBE_TIMEOUT_MS, () => client.destroy())
    client.on('error', () => {})
    client.once('connect', () => {
      probe.port = client.localPort
      const found = probe.seen.find(([port]) => port === probe.port)
      probe.seen = []
      if (found !== undefined) {
        found[2].destroy()
        this.#done(probe, found[1] - probe.at, performance.now())
      }
    })
    client.once('close', () => {
      if (this.#probe !== probe) return
      // Refused, reset or timed out before its accept: it waited that long at least.
      this.#probe = undefined
      const at = performance.now()
      this.#onWait(at - probe.at, at)
    })
  }

  #done (probe: Probe, wait: number, now: number): void {
    this.#probe = undefined
    probe.client.destroy()
    this.#onWait(wait, now)
  }

  /** The listener stops, or stops watching: a probe under way goes. */
  close (): void {
    const probe = this.#probe
    this.#probe = undefined
    probe?.client.destroy()
    this.#accepts = 0
  }
}

function isLoopback (socket: Socket): boolean {
  const a = socket.remoteAddress
  return a === undefined || a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.')
}
