// Listening sockets this process was given instead of binding them itself:
// by systemd's socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES:
// sd_listen_fds(3); the descriptors from 3 on), or by the process it replaces
// (`fastify-pool upgrade`: FASTIFY_POOL_LISTEN_FDS, a JSON object from each
// bind to its descriptor). Read once per process and taken out of the
// environment, so that a process started from this one does not take them
// for its own. A descriptor is taken by one listener once; what no listener
// took is closed by releaseInherited(), so that no socket stays open with
// nobody accepting on it.
import { lookup } from 'node:dns/promises'
import { closeSync, fstatSync } from 'node:fs'
import { isIP } from 'node:net'
import { formatAddress } from '../config/address.ts'
import { explainListenError } from '../base/errors.ts'
import { bindTcpHandle, boundPort, listeningFd, nodeInternals, probeNodeInternals } from './node-internals.ts'
import type { ListenAddress } from '../config/types.ts'

/** The variable through which a process hands its listening sockets to its successor. */
export const HANDOFF_ENV = 'FASTIFY_POOL_LISTEN_FDS'

const SD_LISTEN_FDS_START = 3

interface Inherited {
  /** From the predecessor: bind → descriptor. */
  handed: Map<string, number>
  /** From systemd: name → descriptors (a name may be given to several). */
  systemd: Map<string, number[]>
  taken: Set<number>
}

let inherited: Inherited | undefined

function read (): Inherited {
  if (inherited !== undefined) return inherited
  const env = process.env
  const handed = new Map<string, number>()
  const text = env[HANDOFF_ENV]
  delete env[HANDOFF_ENV]
  if (text !== undefined) {
    try {
      for (const [bind, fd] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
        if (Number.isInteger(fd) && (fd as number) >= SD_LISTEN_FDS_START) handed.set(bind, fd as number)
      }
    } catch {}
  }
  const systemd = new Map<string, number[]>()
  const count = Number(env.LISTEN_FDS)
  // LISTEN_PID names the process they are for; a child that inherited the variables is not it.
  if (Number.isInteger(count) && count > 0 && (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid)) {
    const names = (env.LISTEN_FDNAMES ?? '').split(':')
    for (let i = 0; i < count; i++) {
      const name = names[i] !== undefined && names[i] !== '' ? names[i] as string : 'unknown'
      const list = systemd.get(name) ?? []
      list.push(SD_LISTEN_FDS_START + i)
      systemd.set(name, list)
    }
  }
  for (const key of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[key]
  inherited = { handed, systemd, taken: new Set() }
  return inherited
}

/** The names systemd passed sockets under (for the validation of `systemd:NAME`). */
export function systemdSocketNames (): string[] {
  const { systemd, handed } = read()
  // After an upgrade, the predecessor hands its systemd sockets on under their binds.
  const names = new Set(systemd.keys())
  for (const bind of handed.keys()) if (bind.startsWith('systemd:')) names.add(bind.slice(8))
  return [...names]
}

/** Why an `fd:N` or `systemd:NAME` address cannot be served here, if it cannot. */
export function passedSocketProblem (address: ListenAddress): string | undefined {
  if (address.kind === 'systemd') {
    const names = systemdSocketNames()
    if (names.includes(address.name)) return undefined
    return names.length === 0
      ? `names the systemd socket "${address.name}", but this process was given none (LISTEN_FDS is not set for it: start it from a .socket unit, or with systemd-socket-activate)`
      : `names the systemd socket "${address.name}", which was not passed (passed: ${names.join(', ')}; a socket's name is its FileDescriptorName=, else its .socket unit's name)`
  }
  if (address.kind === 'fd') {
    if (read().handed.has(formatAddress(address))) return undefined
    try {
      if (fstatSync(address.fd).isSocket()) return undefined
      return `names descriptor ${address.fd}, which is not a socket`
    } catch {
      return `names descriptor ${address.fd}, which is not open in this process`
    }
  }
  return undefined
}

/**
 * The descriptor a listener with this address serves on, when this process
 * was given one: its predecessor's socket for the same bind first, then the
 * one `systemd:NAME` or `fd:N` names. Undefined: bind it.
 */
export function takeInherited (address: ListenAddress): number | undefined {
  const state = read()
  const bind = formatAddress(address)
  let fd = state.handed.get(bind)
  if (fd === undefined && address.kind === 'systemd') fd = state.systemd.get(address.name)?.find(n => !state.taken.has(n))
  if (fd === undefined && address.kind === 'fd') fd = address.fd
  if (fd === undefined || state.taken.has(fd)) return undefined
  state.taken.add(fd)
  return fd
}

/** Whether this process was given a socket for this address by its predecessor or primary (taken or not). */
export function wasHanded (address: ListenAddress): boolean {
  return read().handed.has(formatAddress(address))
}

/** Close the inherited descriptors no listener took; the binds they were for. */
export function releaseInherited (): string[] {
  const state = read()
  const released: string[] = []
  for (const [bind, fd] of state.handed) {
    if (state.taken.has(fd)) continue
    state.taken.add(fd)
    try { closeSync(fd) } catch {}
    released.push(bind)
  }
  return released
}

/**
 * The listening sockets of running listeners, to hand to a successor: bind →
 * descriptor. Undefined when Node does not tell a server's descriptor
 * (node-internals.ts: `listeningFd`).
 */
export function handoffSockets (listeners: Iterable<{ bind: string, isRunning: boolean, server: object | undefined }>): Map<string, number> | undefined {
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

/**
 * A listening socket that the primary of `--workers` holds for its workers:
 * each worker gets its own descriptor of it and accepts on it (the kernel
 * hands each connection to one of them), and it outlives any one worker, so
 * a worker leaving, a rolling reload or an upgrade of every process never
 * closes the port.
 */
export interface SharedSocket {
  fd: number
  /** The port it is bound to (the one chosen for port 0); undefined for a passed socket. */
  port: number | undefined
  close: () => void
}

/**
 * The socket to share for one listener's address: the one this process was
 * given for it (a predecessor's, or systemd's), else one bound here (not
 * listening: the workers listen). Undefined where the workers must bind
 * through node:cluster instead: a unix socket, or a Node whose server
 * handles are not usable (node-internals.ts: `serverHandles`). A bind that
 * fails throws as a listener's start would (EADDRINUSE in words). `warn`
 * is told, once per process, which of Node's internals cannot be used.
 */
export async function shareSocket (address: ListenAddress, warn?: (message: string) => void): Promise<SharedSocket | undefined> {
  await probeNodeInternals(warn)
  if (address.kind === 'unix' || !nodeInternals().serverHandles) return undefined
  const fd = takeInherited(address)
  if (fd !== undefined) return { fd, port: undefined, close: () => { try { closeSync(fd) } catch {} } }
  if (address.kind !== 'tcp') throw new Error(`the socket passed as ${formatAddress(address)} is not open in this process`)
  const host = address.host === undefined ? null : isIP(address.host) !== 0 ? address.host : (await lookup(address.host)).address
  try {
    const handle = bindTcpHandle(host, address.port, host !== null && isIP(host) === 6 ? 6 : 4)
    return { fd: handle.fd, port: boundPort(handle), close: () => handle.close() }
  } catch (err) {
    throw explainListenError(err as Error)
  }
}
