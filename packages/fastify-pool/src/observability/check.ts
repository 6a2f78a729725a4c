// One health check of a listener: a real HTTP(S) request to its own readiness
// (or liveness) route, over the socket it bound, with a timeout. A TCP dial
// alone says nothing about whether Fastify answers.
import { connect as http2Connect } from 'node:http2'
import { connect as netConnect, isIP, isIPv6, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { performance } from 'node:perf_hooks'
import type { Listener } from '../listener/listener.ts'

const USER_AGENT = 'fastify-pool-monitor'

/** What one check found. */
export interface CheckResult {
  ok: boolean
  /** The listener is not running: ko at once, whatever `fall` says. */
  down?: boolean
  latency: number | undefined
  message: string | undefined
  at: number
}

/** The result for a listener that is not running: ko, and no request is made. */
export function notRunning (listener: Listener): CheckResult {
  const status = listener.status
  let message = status.disabled ? 'listener is disabled' : `listener is ${status.state}`
  if (status.state === 'failed' && status.lastError !== undefined) message += `: ${status.lastError}`
  return { ok: false, down: true, latency: undefined, message, at: Date.now() }
}

/** Check one listener: a request to its readiness route, else its liveness route, else `/`. */
export async function probe (listener: Listener, timeout: number, signal: AbortSignal | undefined): Promise<CheckResult> {
  const address = listener.address
  if (!listener.isRunning || address === undefined) return notRunning(listener)
  const health = listener.config.health
  const path = health.readiness !== false ? health.readiness : health.liveness !== false ? health.liveness : '/'
  // With no health route, any answer that is not a server error shows that Fastify serves.
  const passes = path === '/' && health.readiness === false && health.liveness === false
    ? (code: number) => code < 500
    : (code: number) => code >= 200 && code < 300
  const began = performance.now()
  const at = Date.now()
  try {
    const code = await send(listener, address, path, timeout, signal)
    const latency = Math.round((performance.now() - began) * 1000) / 1000
    return passes(code) ? { ok: true, latency, message: undefined, at } : { ok: false, latency, message: `GET ${path} answered ${code}`, at }
  } catch (err) {
    return { ok: false, latency: undefined, message: `GET ${path} failed: ${(err as Error).message}`, at }
  }
}

type Where = { socketPath: string } | { host: string, port: number }

/** Wildcard binds are dialled on the loopback of their family. */
function dialHost (a: AddressInfo): string {
  if (a.address === '0.0.0.0') return '127.0.0.1'
  if (a.address === '::') return '::1'
  return a.address
}

function send (listener: Listener, address: AddressInfo | string, path: string, timeout: number, signal: AbortSignal | undefined): Promise<number> {
  const where: Where = typeof address === 'string' ? { socketPath: address } : { host: dialHost(address), port: address.port }
  const { tls, http2 } = listener.config
  // Plain-text HTTP/2 servers speak no HTTP/1.1; TLS ones here also accept HTTP/1.1 (allowHTTP1).
  if (http2 && tls === undefined) return sendHttp2(where, path, timeout, signal)
  // One HTTP/1.1 request written on a bare socket, read up to its status
  // line. It asks for keep-alive and closes with a FIN itself: a check every
  // second that asked `Connection: close` made the server take Node's
  // close-after-response path once a second, and the pool with checks on used
  // 4-6 % more CPU per request than without them (pinned, autocannon
  // -c100 -p10); this way the difference is within noise (bench/BENCHMARKS.md).
  return new Promise((resolve, reject) => {
    const connect = { ...where, ...('socketPath' in where ? { path: where.socketPath } : {}) }
    // The check asks whether this listener answers, not whether its certificate chain is trusted here.
    const socket: Socket = tls === undefined ? netConnect(connect as never) : tlsConnect({ ...connect, rejectUnauthorized: false, ...('host' in where && !isIP(where.host) ? { servername: where.host } : {}) } as never)
    let head = ''
    let code: number | undefined
    let failure: Error | undefined
    const timer = setTimeout(() => { failure = new Error(`no answer within ${timeout} ms`); socket.destroy() }, timeout)
    timer.unref()
    const onAbort = (): void => { failure = new Error('check aborted'); socket.destroy() }
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.setEncoding('latin1')
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${'host' in where ? hostHeader(where.host, where.port) : 'localhost'}\r\nUser-Agent: ${USER_AGENT}\r\n\r\n`)
    })
    socket.on('data', (chunk: string) => {
      // The rest of the answer is read and dropped until the server's FIN.
      if (code !== undefined) return
      head += chunk
      const line = /^HTTP\/1\.[01] (\d{3})/.exec(head)
      if (line !== null) { code = Number(line[1]); socket.end() } else if (head.length > 1024 || head.includes('\r\n')) { failure = new Error('not an HTTP/1.1 answer'); socket.destroy() }
    })
    socket.once('error', (err) => { failure ??= err })
    // 'close' comes last, once the socket is gone: nothing of the check is left behind.
    socket.once('close', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (code !== undefined) resolve(code)
      else reject(failure ?? new Error('connection closed without an answer'))
    })
  })
}

function hostHeader (host: string, port: number): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`
}

function sendHttp2 (where: Where, path: string, timeout: number, signal: AbortSignal | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const authority = 'socketPath' in where ? 'http://localhost' : `http://${isIPv6(where.host) ? `[${where.host}]` : where.host}:${where.port}`
    const session = http2Connect(authority, 'socketPath' in where ? { createConnection: () => netConnect(where.socketPath) } : {})
    let code: number | undefined
    let failure: Error | undefined
    const fail = (err: Error): void => { failure ??= err; session.destroy() }
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeout} ms`)), timeout)
    timer.unref()
    const onAbort = (): void => fail(new Error('check aborted'))
    signal?.addEventListener('abort', onAbort, { once: true })
    session.on('error', fail)
    session.once('close', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (code !== undefined && failure === undefined) resolve(code)
      else reject(failure ?? new Error('session closed without an answer'))
    })
    const stream = session.request({ ':path': path, 'user-agent': USER_AGENT })
    stream.on('error', fail)
    stream.once('response', (headers) => { code = Number(headers[':status']) })
    stream.resume()
    stream.once('close', () => session.close())
    stream.end()
  })
}
