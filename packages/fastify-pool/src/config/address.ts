// Parsing and printing of listen addresses: `localhost:8080`, `[::1]:8080`,
// `:8080` and `unix:/run/app.sock` all keep what the user wrote (the host, and
// the brackets of an IPv6 literal).
import { isIP, isIPv6, SocketAddress, type AddressInfo } from 'node:net'
import { isAbsolute, resolve } from 'node:path'

import { quote } from '../base/errors.ts'
import type { ListenAddress, NormalizedConfig } from './types.ts'

export type { ListenAddress } from './types.ts'

export type ParseResult = { ok: true, address: ListenAddress } | { ok: false, message: string }

const EXPECTED = 'expected "host:port", ":port", "[ipv6]:port", "unix:/path/to.sock", "systemd:NAME" or "fd:N"'
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/i

function parsePort (text: string): number | string {
  if (text === '') return 'has no port after ":"'
  if (!/^\d{1,5}$/.test(text)) return `port ${quote(text)} is not a number from 0 to 65535`
  const port = Number(text)
  if (port > 65535) return `port ${port} is out of range (0 to 65535)`
  return port
}

/** Parse a `listen` value. A bare number is taken as `:port`. */
export function parseListen (value: unknown, baseDir = process.cwd()): ParseResult {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { ok: false, message: `port ${value} is not an integer` }
    value = `:${value}`
  }
  if (typeof value !== 'string') return { ok: false, message: `must be a string, ${EXPECTED}` }
  const text = value.trim()
  if (text === '') return { ok: false, message: `is empty, ${EXPECTED}` }

  if (text.startsWith('unix:')) {
    const path = text.slice(5)
    if (path === '') return { ok: false, message: 'unix socket path is empty' }
    return { ok: true, address: { kind: 'unix', path: isAbsolute(path) ? path : resolve(baseDir, path) } }
  }

  if (text.startsWith('fd:')) {
    const n = text.slice(3)
    if (!/^\d{1,9}$/.test(n) || Number(n) < 3) return { ok: false, message: `${quote(text)}: fd takes the number of an open listening socket, 3 or more (0 to 2 are stdio)` }
    return { ok: true, address: { kind: 'fd', fd: Number(n) } }
  }

  if (text.startsWith('systemd:')) {
    const name = text.slice(8)
    // systemd's FileDescriptorName=: up to 255 printable ASCII characters, no ":".
    if (!/^[\x21-\x39\x3b-\x7e]{1,255}$/.test(name)) return { ok: false, message: `${quote(text)}: systemd takes the name of a socket passed by socket activation (FileDescriptorName=, or the .socket unit's name)` }
    return { ok: true, address: { kind: 'systemd', name } }
  }

  if (/^\d+$/.test(text)) {
    const port = parsePort(text)
    return typeof port === 'string' ? { ok: false, message: port } : { ok: true, address: { kind: 'tcp', host: undefined, port } }
  }

  let host: string
  let portText: string
  if (text.startsWith('[')) {
    const end = text.indexOf(']')
    if (end === -1) return { ok: false, message: `${quote(text)} has no closing "]", ${EXPECTED}` }
    host = text.slice(1, end)
    if (!isIPv6(host)) return { ok: false, message: `${quote(host)} is not an IPv6 address` }
    host = canonicalIPv6(host)
    if (text[end + 1] !== ':') return { ok: false, message: `${quote(text)} has no port after "]", ${EXPECTED}` }
    portText = text.slice(end + 2)
  } else {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
      return { ok: false, message: `${quote(text)} is a URL; listen takes an address such as "127.0.0.1:8080" (a public URL goes in expose)` }
    }
    const colon = text.lastIndexOf(':')
    if (colon === -1) return { ok: false, message: `${quote(text)} has no port, ${EXPECTED}` }
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host.includes(':')) {
      // "::1:8080" is ambiguous (the whole text is an IPv6 address too), so always ask for brackets.
      const hint = isIPv6(host) ? `"[${host}]:${portText}"` : isIPv6(text) ? `"[${text}]:port"` : undefined
      return { ok: false, message: hint === undefined ? `${quote(text)} is not an address, ${EXPECTED}` : `${quote(text)} looks like an IPv6 address without brackets; write ${hint}` }
    }
    // All-numeric names are IPv4 addresses to resolvers (and 127.1 is 127.0.0.1 to some),
    // so anything that is not a plain dotted quad is refused rather than guessed at.
    if (/^[\d.]+$/.test(host) && isIP(host) === 0) {
      return { ok: false, message: `${quote(host)} is not a valid IPv4 address (four numbers from 0 to 255)` }
    }
    if (host !== '' && isIP(host) === 0 && !HOSTNAME.test(host)) {
      return { ok: false, message: `${quote(host)} is neither an IP address nor a valid hostname` }
    }
  }
  const port = parsePort(portText)
  if (typeof port === 'string') return { ok: false, message: port }
  // Hostnames are case-insensitive; an IPv6 zone id (an interface name) is not, and is already canonical.
  return { ok: true, address: { kind: 'tcp', host: host === '' ? undefined : isIPv6(host) ? host : host.toLowerCase(), port } }
}

/**
 * One spelling per IPv6 address (`[0:0::1]` and `[::1]` are one bind): lower
 * case, zeros compressed as RFC 5952 says; a zone id (`%eth0`) is kept as written.
 */
function canonicalIPv6 (host: string): string {
  const zone = host.indexOf('%')
  const ip = zone === -1 ? host : host.slice(0, zone)
  return new SocketAddress({ address: ip, family: 'ipv6' }).address + (zone === -1 ? '' : host.slice(zone))
}

/** Canonical text of an address: the listener's bind key. */
export function formatAddress (address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`
  if (address.kind === 'fd') return `fd:${address.fd}`
  if (address.kind === 'systemd') return `systemd:${address.name}`
  if (address.host === undefined) return `:${address.port}`
  return isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

const WILDCARDS = new Set([undefined, '0.0.0.0', '::'])

/** True when binding both addresses at once would fail with EADDRINUSE (port 0 never clashes). */
export function bindsOverlap (a: ListenAddress, b: ListenAddress): boolean {
  if (a.kind !== 'tcp' || b.kind !== 'tcp') return a.kind === b.kind && formatAddress(a) === formatAddress(b)
  if (a.port === 0 || a.port !== b.port) return false
  if (a.host === b.host) return true
  // `:port` binds every interface (dual stack), so it clashes with any host on that port;
  // 0.0.0.0 clashes with IPv4 hosts and :: with everything (Linux defaults to dual stack).
  if (a.host === undefined || b.host === undefined || a.host === '::' || b.host === '::') return true
  if (a.host === '0.0.0.0') return isIPv6(b.host) === false
  if (b.host === '0.0.0.0') return isIPv6(a.host) === false
  return false
}

/** A host for URLs: wildcard binds are reached through localhost. */
export function urlHost (host: string | undefined): string {
  if (WILDCARDS.has(host)) return 'localhost'
  return isIPv6(host as string) ? `[${host}]` : host as string
}

/** The URL of the address a listener bound (undefined for a unix socket). */
export function boundUrl (config: Pick<NormalizedConfig, 'address' | 'tls'>, bound: AddressInfo | string | undefined): string | undefined {
  if (typeof bound !== 'object') return undefined
  // A socket this process was given has no host in the config: the one it is bound to.
  const host = config.address.kind === 'tcp' ? config.address.host : config.address.kind === 'unix' ? undefined : bound.address
  return deriveExpose({ kind: 'tcp', host, port: 0 }, config.tls !== undefined, bound.port)
}

/** The public URL of a TCP address (undefined for unix sockets and port 0 unless the bound port is given). */
export function deriveExpose (address: ListenAddress, secure: boolean, port?: number): string | undefined {
  if (address.kind !== 'tcp') return undefined
  const p = port ?? address.port
  if (p === 0) return undefined
  return `${secure ? 'https' : 'http'}://${urlHost(address.host)}:${p}`
}

/** True for an address only this machine can reach: loopback or a unix socket. */
export function isLocalOnly (address: ListenAddress): boolean {
  if (address.kind === 'unix') return true
  // What a passed socket is bound to is not known before it serves: taken as reachable.
  if (address.kind !== 'tcp') return false
  const host = address.host
  return host !== undefined && (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host))
}
