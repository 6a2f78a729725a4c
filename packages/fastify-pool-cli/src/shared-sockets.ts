// The listening sockets the primary of --workers holds: one per TCP
// listener, bound here (or the one this process was given: by systemd, or by
// the primary it replaces) and never listened on here. Each worker is forked
// with its own descriptor of each and accepts on it; the kernel gives each
// connection to one of them, with no hop through the primary, and the
// socket outlives any one worker, so a worker's death, a roll and an upgrade
// never close the port. Without Node's server handles the workers bind
// through node:cluster's round-robin instead (`usable` false).
import { closeSync } from 'node:fs'
import type { ListenerFailure, NormalizedConfig } from 'fastify-pool'
import { bindSocket, canShareSockets, handleFor, type BoundSocket } from 'fastify-pool/sockets'
import { HANDOFF_ENV, inheritedSockets } from './inherited.ts'
import { WORKERS_UPGRADE } from './upgrade.ts'

/**
 * The listening sockets the primary holds for its workers, by bind: one per
 * TCP listener that is not disabled. A worker gets each as an extra stdio
 * descriptor, from 4 on, named in FASTIFY_POOL_LISTEN_FDS; one that starts
 * a listener again after a stop gets it over IPC (ensure()).
 */
export class SharedSockets {
  readonly #sockets = new Map<string, BoundSocket>()
  /** Binds being held again by ensure(). */
  readonly #holding = new Map<string, Promise<void>>()
  /** False once Node's server handles proved unusable: the workers bind through node:cluster. */
  usable = true

  /**
   * Hold a socket for each listener of `servers` that has none yet; resolves
   * with the binds added. A bind that fails closes what this call added and
   * throws every listener's failure at once.
   */
  async hold (servers: readonly NormalizedConfig[], warn: (message: string) => void): Promise<string[]> {
    const added: string[] = []
    const failures: ListenerFailure[] = []
    // A unix socket is refused with workers (workersRefusal); without Node's server handles the workers bind through node:cluster.
    const shared = servers.filter(s => !s.disabled && s.address.kind !== 'unix' && !this.#sockets.has(s.bind))
    if (shared.length > 0 && this.usable && !await canShareSockets(warn)) this.usable = false
    if (!this.usable) return added
    const inherited = inheritedSockets()
    for (const s of shared) {
      if (this.#sockets.has(s.bind)) continue
      try {
        // The one this process was given for it (systemd's, or its predecessor's), else one bound here (not listening: the workers listen).
        const fd = inherited.forSharing(s.address, s.bind)
        const socket = fd !== undefined ? passed(fd) : await bindSocket(s.address, warn)
        if (socket === undefined) throw new Error(`the socket passed as ${s.bind} is not open in this process`)
        this.#sockets.set(s.bind, socket)
        added.push(s.bind)
      } catch (error) {
        failures.push({ name: s.name, bind: s.bind, error: error as Error })
      }
    }
    if (failures.length > 0) {
      this.drop(added)
      throw Object.assign(new Error('a listening socket could not be bound'), { failures })
    }
    return added
  }

  /**
   * The socket of one listener, held anew if it has none (a stop of it in
   * every worker closed it): what a worker that starts it again listens on,
   * sent to it over IPC (a descriptor of its own there). Undefined when the
   * workers bind through node:cluster. One hold per bind at a time.
   */
  async ensure (server: NormalizedConfig, warn: (message: string) => void): Promise<BoundSocket | undefined> {
    const held = this.#sockets.get(server.bind)
    if (held !== undefined || !this.usable || server.address.kind === 'unix') return held
    let holding = this.#holding.get(server.bind)
    if (holding === undefined) {
      holding = this.hold([{ ...server, disabled: false }], warn).then(() => undefined).finally(() => this.#holding.delete(server.bind))
      this.#holding.set(server.bind, holding)
    }
    await holding
    return this.#sockets.get(server.bind)
  }

  /**
   * A listener that every worker stopped: close the socket this process
   * bound for it, or its port would queue connections nobody accepts. One it
   * was given (systemd's, a predecessor's) stays: it has no other copy here,
   * and systemd keeps its own anyway.
   */
  stopped (binds: Iterable<string>): void {
    this.drop([...binds].filter(bind => this.#sockets.get(bind)?.port !== undefined))
  }

  /** Close the sockets of these binds (the workers that listen on them keep their own descriptors). */
  drop (binds: Iterable<string>): void {
    for (const bind of binds) {
      this.#sockets.get(bind)?.close()
      this.#sockets.delete(bind)
    }
  }

  /** Close those no listener of `servers` has. */
  keepOnly (servers: readonly NormalizedConfig[]): void {
    const wanted = new Set(servers.map(s => s.bind))
    this.drop([...this.#sockets.keys()].filter(b => !wanted.has(b)))
  }

  /** The stdio and environment a worker of `servers` is forked with. */
  forWorker (servers: readonly NormalizedConfig[]): { stdio: Array<number | 'ipc'>, env: Record<string, string> } {
    const fds: number[] = []
    const named: Record<string, number> = {}
    for (const s of servers) {
      const socket = this.#sockets.get(s.bind)
      if (socket === undefined || s.bind in named) continue
      named[s.bind] = 4 + fds.length
      fds.push(socket.fd)
    }
    return { stdio: [0, 1, 2, 'ipc', ...fds], env: fds.length === 0 ? {} : { [HANDOFF_ENV]: JSON.stringify(named) } }
  }

  /** Bind → descriptor, for a successor primary; or why there is none. */
  handOn (): Map<string, number> | string {
    if (!this.usable || this.#sockets.size === 0) return WORKERS_UPGRADE
    return new Map([...this.#sockets].map(([bind, s]) => [bind, s.fd]))
  }
}

/** A socket this process was given (systemd's, a predecessor's; no `port`): its handle made once, so that it is closed once. */
function passed (fd: number): BoundSocket {
  const handle = handleFor(fd)
  if (handle === undefined) {
    closeSync(fd)
    throw new Error(`Node cannot make a handle of descriptor ${fd} here`)
  }
  return { fd, port: undefined, handle, close: () => (handle as { close: () => void }).close() }
}
