// One health check of a listener: a real HTTP(S) request to its own readiness
// (or liveness) route, over the socket it bound, with a timeout. A TCP dial
// alone (what the golib seed does) says nothing about whether Fastify answers.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as http2Connect } from 'node:http2'
import { connect as netConnect, isIPv6, type AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Listener } from './listener.ts'

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
  return new Promise((resolve, reject) => {
    let code: number | undefined
    const options = {
      ...where,
      path,
      method: 'GET',
      // No pooled socket outlives the check, so none can hold up a drain or the process.
      agent: false as const,
      headers: { connection: 'close', 'user-agent': USER_AGENT },
      // The check asks whether this listener answers, not whether its certificate chain is trusted here.
      ...(tls === undefined ? {} : { rejectUnauthorized: false })
    }
    const req = tls === undefined ? httpRequest(options) : httpsRequest(options)
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeout} ms`)), timeout)
    timer.unref()
    const onAbort = (): void => { req.destroy(new Error('check aborted')) }
    signal?.addEventListener('abort', onAbort, { once: true })
    let failure: Error | undefined
    req.once('response', (res) => {
      code = res.statusCode
      res.resume()
    })
    req.once('error', (err) => { failure = err })
    // 'close' comes last, once the socket is gone: nothing of the check is left behind.
    req.once('close', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (code !== undefined && failure === undefined) resolve(code)
      else reject(failure ?? new Error('connection closed without an answer'))
    })
    req.end()
  })
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
