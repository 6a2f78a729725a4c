// Talking to a running pool through its control API: where it listens and
// with which token, read from the same pool file the pool was started with.
import { request as httpRequest, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect } from 'node:net'
import { dirname } from 'node:path'
import { isLocalOnly, parseListen } from 'fastify-pool/address'
import { readDocument } from './document.ts'
import type { CommandCode } from './codes.ts'

/** Where the control API of the pool a file describes is, and how to be let in. */
export interface ControlTarget {
  /** For messages: `http://127.0.0.1:3790/pool` or `unix:/run/pool.sock /pool`. */
  where: string
  path: string
  options: RequestOptions
  secure: boolean
  token: string | undefined
  /** The control listener's name, and the file's other listeners at fixed addresses: probed when the control listener does not answer. */
  name: string
  others: Array<{ name: string, connect: { host: string, port: number } | { path: string } }>
}

/** Exit codes of the commands that talk to a running pool (docs/cli.md). */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, notRunning: 3, unauthorized: 4, noMatch: 5 })

/** The code of a command's error line (--json), by exit code. */
const CODES: Record<number, CommandCode> = { 1: 'FST_POOL_REFUSED', 2: 'FST_POOL_USAGE', 3: 'FST_POOL_NOT_RUNNING', 4: 'FST_POOL_UNAUTHORIZED', 5: 'FST_POOL_NO_MATCH' }

export class ControlError extends Error {
  readonly exitCode: number
  readonly code: CommandCode
  /** Problems the pool named (a refused reload), each with its path. */
  readonly problems: Array<{ path?: string, message?: string }> | undefined
  constructor (message: string, exitCode: number, problems?: Array<{ path?: string, message?: string }>) {
    super(message)
    this.exitCode = exitCode
    this.code = CODES[exitCode] ?? 'FST_POOL_REFUSED'
    this.problems = problems
  }
}

/**
 * The control target a pool file names, read without validating the rest
 * of the file (it may hold an edit not applied yet). A listener bound to every
 * interface is reached on loopback; its certificate is not checked there
 * (the file names the process, not a host name), anywhere else it is.
 */
export async function controlTarget (file: string, token: string | undefined): Promise<ControlTarget> {
  const { doc } = await readDocument(file)
  const control = doc.control as { listener?: unknown, path?: unknown, token?: unknown } | undefined
  if (control === undefined || control === null || typeof control !== 'object') {
    throw new ControlError('the file has no control section, so the running pool cannot be reached: add `control: { listener: admin }` (and a token unless it is on loopback), then restart the pool', EXIT.failed)
  }
  const name = typeof control.listener === 'string' ? control.listener : 'admin'
  const servers = Array.isArray(doc.servers) ? doc.servers as Array<Record<string, unknown>> : []
  const server = servers.find(s => s !== null && typeof s === 'object' && s.name === name)
  const parsed = server === undefined ? undefined : parseListen(server.listen, dirname(file))
  if (server === undefined || parsed === undefined || !parsed.ok) {
    throw new ControlError(`the control listener "${name}" is not a listener of the file with a valid listen address`, EXIT.failed)
  }
  const address = parsed.address
  const others = servers.flatMap((s): ControlTarget['others'] => {
    if (s === null || typeof s !== 'object' || s.name === name || typeof s.name !== 'string') return []
    const p = parseListen(s.listen, dirname(file))
    if (p === undefined || !p.ok) return []
    if (p.address.kind === 'unix') return [{ name: s.name, connect: { path: p.address.path } }]
    if (p.address.kind !== 'tcp') return []
    return p.address.port === 0 ? [] : [{ name: s.name, connect: { host: connectHost(p.address.host), port: p.address.port } }]
  })
  const path = typeof control.path === 'string' ? control.path : '/pool'
  const tls = server.tls ?? (doc.defaults as { tls?: unknown } | undefined)?.tls
  const secure = tls !== undefined && tls !== false
  const given = token ?? (typeof control.token === 'string' ? control.token : undefined)
  const base = { headers: given === undefined ? {} : { authorization: `Bearer ${given}` } }
  if (address.kind === 'fd' || address.kind === 'systemd') {
    throw new ControlError(`the control listener "${name}" listens on a socket passed to the process (${server.listen as string}), which the command cannot find from the file; give it a TCP or unix address`, EXIT.failed)
  }
  if (address.kind === 'unix') {
    return { where: `unix:${address.path} ${path}`, path, secure, token: given, name, others, options: { ...base, socketPath: address.path } }
  }
  const host = connectHost(address.host)
  const local = isLocalOnly({ kind: 'tcp', host, port: address.port })
  return {
    where: `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}${path}`,
    path,
    secure,
    token: given,
    name,
    others,
    options: { ...base, host, port: address.port, ...(secure && local ? { rejectUnauthorized: false } : {}) }
  }
}

function connectHost (host: string | undefined): string {
  if (host === undefined || host === '0.0.0.0') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}

/** One request to the control API; resolves with the status and the parsed JSON body. */
export function callControl (target: ControlTarget, method: 'GET' | 'POST', subpath: string, query: Record<string, string> = {}, json?: object, waitMs = 60_000): Promise<{ status: number, body: Record<string, unknown> }> {
  const search = new URLSearchParams(query).toString()
  const path = `${target.path}${subpath}${search === '' ? '' : `?${search}`}`
  const send = target.secure ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send({ ...target.options, method, path, timeout: waitMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let body: Record<string, unknown>
        try {
          body = JSON.parse(text) as Record<string, unknown>
        } catch {
          body = { error: text }
        }
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${Math.round(waitMs / 1000)} s`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') {
        notAnswering(target, err.code).then(reject, reject)
      } else reject(new ControlError(`cannot reach the pool at ${target.where}: ${err.message}`, EXIT.failed))
    })
    const payload = json === undefined ? undefined : JSON.stringify(json)
    if (payload !== undefined) req.setHeader('content-type', 'application/json')
    if (method === 'POST') req.setHeader('content-length', Buffer.byteLength(payload ?? ''))
    req.end(payload)
  })
}

/**
 * Why the control listener did not answer: no pool runs there, or (another of
 * the file's listeners accepts connections) its control listener was stopped.
 */
async function notAnswering (target: ControlTarget, code: string): Promise<ControlError> {
  const alive = await firstAccepting(target.others)
  if (alive === undefined) return new ControlError(`no pool is running at ${target.where} (${code}): start it with fastify-pool start`, EXIT.notRunning)
  return new ControlError(`the control listener "${target.name}" is stopped (${target.where}: ${code}), but the pool is running: listener "${alive}" accepts connections. A reload starts the control listener again: send the process SIGHUP (kill -HUP <pid>)`, EXIT.notRunning)
}

/** The name of the first listener that accepts a TCP or unix socket connection within a second, if any. */
function firstAccepting (others: ControlTarget['others']): Promise<string | undefined> {
  if (others.length === 0) return Promise.resolve(undefined)
  return new Promise(resolve => {
    let pending = others.length
    for (const other of others) {
      const socket = netConnect(other.connect)
      socket.setTimeout(1000)
      const done = (ok: boolean): void => {
        socket.destroy()
        if (ok) resolve(other.name)
        else if (--pending === 0) resolve(undefined)
      }
      socket.once('connect', () => done(true))
      socket.once('error', () => done(false))
      socket.once('timeout', () => done(false))
    }
  })
}

/** Turn a control answer that is not a success into the command's error and exit code. */
export function checkAnswer (target: ControlTarget, status: number, body: Record<string, unknown>): void {
  if (status === 401) {
    throw new ControlError(target.token === undefined
      ? `the pool at ${target.where} wants a token: set the one of its control section (or pass --token)`
      : `the pool at ${target.where} refused the token`, EXIT.unauthorized)
  }
  if (status === 404) throw new ControlError(typeof body.error === 'string' ? body.error : `no control API at ${target.where}`, EXIT.noMatch)
}
