// The listening sockets this process was given instead of binding them:
// by systemd's socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES:
// sd_listen_fds(3); the descriptors from 3 on), or by the process it
// replaces or its cluster's primary (FASTIFY_POOL_LISTEN_FDS, a JSON object
// from each bind to its descriptor). Read once per process and taken out of
// the environment, so that a process started from this one does not take
// them for its own. They reach the pool as its socket source
// (PoolOptions.sockets): a descriptor is taken by one listener once, and
// what no listener took is closed by release(), so that no socket stays
// open with nobody accepting on it.
import cluster from 'node:cluster'
import { closeSync, fstatSync } from 'node:fs'
import type { ListenAddress, SocketSource } from 'fastify-pool'
import { handleFor } from 'fastify-pool/sockets'

/** The variable through which a process hands its listening sockets to its successor, and a primary to its workers. */
export const HANDOFF_ENV = 'FASTIFY_POOL_LISTEN_FDS'

const SD_LISTEN_FDS_START = 3

export class InheritedSockets implements SocketSource {
  /** From the predecessor or the primary: bind → descriptor. */
  readonly #handed = new Map<string, number>()
  /** From systemd: name → descriptors (a name may be given to several). */
  readonly #systemd = new Map<string, number[]>()
  readonly #taken = new Set<number>()
  /** A worker's: a handed socket the primary sent again (its first descriptor closed with a stop), by bind, for the next start. */
  readonly #again = new Map<string, object>()

  constructor (env: NodeJS.ProcessEnv) {
    const text = env[HANDOFF_ENV]
    if (text !== undefined) {
      try {
        for (const [bind, fd] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
          if (Number.isInteger(fd) && (fd as number) >= SD_LISTEN_FDS_START) this.#handed.set(bind, fd as number)
        }
      } catch {
        // Not ours to judge: a variable that is not JSON hands nothing on, and every listener binds its own address.
      }
    }
    const count = Number(env.LISTEN_FDS)
    // LISTEN_PID names the process they are for; a child that inherited the variables is not it.
    if (Number.isInteger(count) && count > 0 && (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid)) {
      const names = (env.LISTEN_FDNAMES ?? '').split(':')
      for (let i = 0; i < count; i++) {
        const name = names[i] !== undefined && names[i] !== '' ? names[i] as string : 'unknown'
        const list = this.#systemd.get(name) ?? []
        list.push(SD_LISTEN_FDS_START + i)
        this.#systemd.set(name, list)
      }
    }
  }

  /** The names systemd passed sockets under (after an upgrade, as the predecessor hands them on under their binds). */
  systemdNames (): string[] {
    const names = new Set(this.#systemd.keys())
    for (const bind of this.#handed.keys()) if (bind.startsWith('systemd:')) names.add(bind.slice(8))
    return [...names]
  }

  /**
   * The predecessor's (or primary's) socket for the same bind first, then
   * the one `systemd:NAME` or `fd:N` names. Undefined: the listener binds
   * its address. In a node:cluster worker a descriptor is given as a handle
   * of the worker's own (listen({ fd }) would ask the primary).
   */
  take (address: ListenAddress, bind: string): number | object | undefined {
    const handed = this.#handed.get(bind)
    const again = this.#again.get(bind)
    if (again !== undefined) {
      this.#again.delete(bind)
      return again
    }
    if (handed !== undefined && this.#taken.has(handed) && cluster.isWorker) {
      // A bind would meet the socket the primary holds for every worker (EADDRINUSE).
      throw new Error('the primary holds this listener\'s socket for every worker, and this worker\'s descriptor of it closed when the listener stopped: a rolling reload (fastify-pool reload) starts it again in new workers; restarts keep it')
    }
    let fd = handed
    if (fd === undefined && address.kind === 'systemd') fd = this.#systemd.get(address.name)?.find(n => !this.#taken.has(n))
    if (fd === undefined && address.kind === 'fd') fd = address.fd
    if (fd === undefined) return undefined
    if (this.#taken.has(fd)) {
      if (address.kind === 'tcp' || address.kind === 'unix') return undefined
      throw new Error(`the socket passed as ${bind} was closed when the listener stopped; a passed socket serves one start per process (restarts keep it)`)
    }
    this.#taken.add(fd)
    if (!cluster.isWorker) return fd
    // listen({ fd }) in a worker would ask the primary to listen on its own descriptor of that number: another socket.
    const handle = handleFor(fd)
    if (handle === undefined) throw new Error(`this worker cannot listen on the socket its primary gave (descriptor ${fd}): Node makes no handle of it here`)
    return handle
  }

  /** Why an `fd:N` or `systemd:NAME` address cannot be served here, if it cannot. */
  problem (address: ListenAddress, bind: string): string | undefined {
    if (address.kind === 'systemd') {
      const names = this.systemdNames()
      if (names.includes(address.name)) return undefined
      return names.length === 0
        ? `names the systemd socket "${address.name}", but this process was given none (LISTEN_FDS is not set for it: start it from a .socket unit, or with systemd-socket-activate)`
        : `names the systemd socket "${address.name}", which was not passed (passed: ${names.join(', ')}; a socket's name is its FileDescriptorName=, else its .socket unit's name)`
    }
    if (address.kind !== 'fd' || this.#handed.has(bind)) return undefined
    try {
      if (fstatSync(address.fd).isSocket()) return undefined
      return `names descriptor ${address.fd}, which is not a socket`
    } catch {
      return `names descriptor ${address.fd}, which is not open in this process`
    }
  }

  /** Whether a listener of this bind took the socket it was handed (a start of it again needs another: sentAgain()). */
  spent (bind: string): boolean {
    const fd = this.#handed.get(bind)
    return fd !== undefined && this.#taken.has(fd) && !this.#again.has(bind)
  }

  /** A worker: the primary sent this bind's socket again (a handle of this process's own), for the listener's next start. */
  sentAgain (bind: string, handle: object): void {
    // One sent before and not used (two starts asked at once): closed, not leaked.
    const before = this.#again.get(bind)
    if (before !== undefined && before !== handle) (before as { close?: () => void }).close?.()
    this.#again.set(bind, handle)
  }

  /** Close the handed descriptors no listener took; the binds they were for. */
  release (): string[] {
    const released: string[] = []
    for (const [bind, fd] of this.#handed) {
      if (this.#taken.has(fd)) continue
      this.#taken.add(fd)
      try {
        closeSync(fd)
      } catch (err) {
        // Closed already (EBADF): nothing left to release. Anything else is a real fault.
        if ((err as NodeJS.ErrnoException).code !== 'EBADF') throw err
      }
      released.push(bind)
    }
    return released
  }

  /**
   * The descriptor for this address that the primary of --workers shares
   * with its workers, when it was given one (systemd's, or its
   * predecessor's); undefined: the primary binds it.
   */
  forSharing (address: ListenAddress, bind: string): number | undefined {
    const fd = this.#handed.get(bind) ?? (address.kind === 'systemd' ? this.#systemd.get(address.name)?.find(n => !this.#taken.has(n)) : address.kind === 'fd' ? address.fd : undefined)
    if (fd === undefined || this.#taken.has(fd)) return undefined
    this.#taken.add(fd)
    return fd
  }
}

let inherited: InheritedSockets | undefined

/** This process's inherited sockets: read from the environment once, and the variables taken out of it. */
export function inheritedSockets (): InheritedSockets {
  if (inherited !== undefined) return inherited
  inherited = new InheritedSockets(process.env)
  for (const key of [HANDOFF_ENV, 'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) Reflect.deleteProperty(process.env, key)
  return inherited
}
