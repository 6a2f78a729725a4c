// `fastify-pool/sockets`: what a process layer needs of listening sockets
// beyond a pool's own start, for a supervisor (fastify-pool-cli's start,
// --workers and upgrade) to give a pool its sockets (PoolOptions.sockets)
// and to take them back for a successor. Nothing here reads the environment
// or knows of systemd, node:cluster or upgrades: those are the command's.
// Each function goes through the one door to Node's internals
// (listener/node-internals.ts) and says what it does without them.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { explainListenError } from './base/errors.ts'
import { bindTcpHandle, boundPort, handleForFd, listeningFd, nodeInternals, probeNodeInternals } from './listener/node-internals.ts'
import type { ListenAddress, SocketSource } from './config/types.ts'

export type { ListenAddress, SocketSource }

/** A socket bound here for other processes to listen on (bindSocket()). */
export interface BoundSocket {
  fd: number
  /** The port it is bound to (the one chosen for port 0). */
  port: number | undefined
  /** Node's handle of it: what child_process's send() passes to another process (as a descriptor of its own there). */
  handle: object
  close: () => void
}

/**
 * A TCP socket bound (not listening) to a `host:port` address, for other
 * processes (a cluster's workers) to listen and accept on together: the
 * kernel gives each connection to one of them, and the socket outlives any
 * one of them. Undefined where Node cannot make one (its server handles,
 * node-internals.ts `serverHandles`: probed first; `warn` is told once per
 * process what cannot be used) or for an address that is not `host:port`.
 * A bind that fails throws as a listener's start would (EADDRINUSE in words).
 */
export async function bindSocket (address: ListenAddress, warn?: (message: string) => void): Promise<BoundSocket | undefined> {
  await probeNodeInternals(warn)
  if (address.kind !== 'tcp' || !nodeInternals().serverHandles) return undefined
  const host = address.host === undefined ? null : isIP(address.host) !== 0 ? address.host : (await lookup(address.host)).address
  try {
    const handle = bindTcpHandle(host, address.port, host !== null && isIP(host) === 6 ? 6 : 4)
    return { fd: handle.fd, port: boundPort(handle), handle, close: () => handle.close() }
  } catch (err) {
    throw explainListenError(err as Error)
  }
}

/**
 * Whether this Node lets one process bind sockets for others to listen on
 * (bindSocket(), handleFor()): Node's server handles, probed once per
 * process (`warn` is told once what cannot be used).
 */
export async function canShareSockets (warn?: (message: string) => void): Promise<boolean> {
  await probeNodeInternals(warn)
  return nodeInternals().serverHandles
}

/**
 * A listening handle of this process's own for a socket's descriptor, as
 * net.Server.listen() takes it and a SocketSource may give it. In a
 * node:cluster worker, listen({ fd }) is sent to the primary, which would
 * listen on its own descriptor of that number; a handle is listened on here.
 * Undefined without Node's server handles: give the descriptor then.
 */
export function handleFor (fd: number): object | undefined {
  return handleForFd(fd)
}

/**
 * The listening sockets of running listeners, bind → descriptor, to hand
 * to another process (a successor that takes over the ports). Undefined
 * when Node does not tell a server's descriptor (node-internals.ts
 * `listeningFd`).
 */
export function listeningDescriptors (listeners: Iterable<{ bind: string, isRunning: boolean, server: object | undefined }>): Map<string, number> | undefined {
  if (!nodeInternals().listeningFd) return undefined
  const sockets = new Map<string, number>()
  for (const l of listeners) {
    if (!l.isRunning || l.server === undefined) continue
    const fd = listeningFd(l.server)
    if (fd === undefined) return undefined
    sockets.set(l.bind, fd)
  }
  return sockets
}
