// The listening sockets a listener serves on when it does not bind its own
// address: the seam between the pool and the process that runs it
// (PoolOptions.sockets). The pool asks its source on each start; what the
// source does not give, the listener binds. Only `fd:N` has a meaning
// without a source: descriptor N of this process, taken by one start (a
// stop closes it; restarts keep it). A `systemd:NAME` address needs a source
// that knows the name (fastify-pool-cli's reads systemd's LISTEN_FDS).
import { fstatSync } from 'node:fs'
import { formatAddress } from '../config/address.ts'
import type { ListenAddress, SocketSource } from '../config/types.ts'

export class SocketSeam {
  readonly #source: SocketSource | undefined
  /** The `fd:N` descriptors taken by a listener of this pool (once each). */
  readonly #taken = new Set<number>()

  constructor (source?: SocketSource) {
    this.#source = source
  }

  /** The descriptor to listen on for this address, or undefined: bind it. Throws why a passed socket cannot serve this start. */
  take (address: ListenAddress): number | object | undefined {
    const bind = formatAddress(address)
    const given = this.#source?.take(address, bind)
    if (given !== undefined) return given
    if (address.kind === 'tcp' || address.kind === 'unix') return undefined
    if (address.kind === 'fd' && !this.#taken.has(address.fd)) {
      this.#taken.add(address.fd)
      return address.fd
    }
    throw new Error(`the socket passed as ${bind} was closed when the listener stopped; a passed socket serves one start per process (restarts keep it)`)
  }

  /** Why a `systemd:NAME` or `fd:N` address cannot be served in this process, if it cannot. */
  problem (address: ListenAddress): string | undefined {
    if (address.kind === 'tcp' || address.kind === 'unix') return undefined
    const bind = formatAddress(address)
    if (this.#source?.problem !== undefined) return this.#source.problem(address, bind)
    if (address.kind === 'systemd') return `names the systemd socket "${address.name}", but this pool has no socket source that passes it (fastify-pool start reads systemd's LISTEN_FDS; from code, give createPool() a \`sockets\` source)`
    try {
      if (fstatSync(address.fd).isSocket()) return undefined
      return `names descriptor ${address.fd}, which is not a socket`
    } catch {
      return `names descriptor ${address.fd}, which is not open in this process`
    }
  }
}
