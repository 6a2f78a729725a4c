// Child process of the drain benchmark: times stop() with K idle keep-alive
// connections (opened by the parent), and with one request in flight of known
// length. Bare Fastify's close() is measured the same way for reference.
import { Agent, request, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPool } from 'fastify-pool'
import { serve } from './child.ts'

export type Kind = 'pool' | 'fastify'

let onEnter: (() => void) | undefined
const plugin = async (app: FastifyInstance): Promise<void> => {
  app.get('/', async () => ({ hello: 'world' }))
  app.get<{ Querystring: { ms: string } }>('/hold', async (req) => {
    onEnter?.()
    await new Promise(resolve => setTimeout(resolve, Number(req.query.ms)))
    return { held: true }
  })
}

interface Target { url: string, server: Server, stop: () => Promise<unknown> }

async function start (kind: Kind): Promise<Target> {
  if (kind === 'pool') {
    const pool = createPool({ servers: [{ name: 'drain', listen: '127.0.0.1:0' }], handlers: plugin })
    await pool.start()
    const l = pool.load('drain')
    return { url: l?.url as string, server: l?.server as Server, stop: () => pool.stop({ timeout: 30_000 }) }
  }
  const app = Fastify()
  await app.register(plugin)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, server: app.server, stop: () => app.close() }
}

function connections (server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => err === null ? resolve(n) : reject(err)))
}

function get (url: string, agent: Agent | false): Promise<IncomingMessage & { body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve(Object.assign(res, { body })))
    })
    req.on('error', reject)
    req.end()
  })
}

let idleTarget: Target | undefined

/** Start a server for the idle test; the parent opens the keep-alive connections, so that their closing costs this process nothing. */
async function idleStart ({ kind }: { kind: Kind }): Promise<{ url: string }> {
  idleTarget = await start(kind)
  return { url: idleTarget.url }
}

/** Connections open on the server, then stop(): milliseconds it took. */
async function idleStop (): Promise<{ open: number, ms: number }> {
  const t = idleTarget as Target
  idleTarget = undefined
  const open = await connections(t.server)
  const t0 = performance.now()
  await t.stop()
  return { open, ms: performance.now() - t0 }
}

export interface InflightResult { ms: number[], over: number[], statuses: number[], connectionClose: number, capped: number }

/**
 * stop() called the moment a request of holdMs enters its handler. A server
 * that keeps the connection open once the response is sent would wait for the
 * client or for its keep-alive timeout: capMs after the request ends the client lets go, and
 * the run counts as capped.
 */
async function inflight ({ kind, holdMs, runs, capMs }: { kind: Kind, holdMs: number, runs: number, capMs: number }): Promise<InflightResult> {
  const ms: number[] = []
  const over: number[] = []
  const statuses: number[] = []
  let connectionClose = 0
  let capped = 0
  const cap = holdMs + capMs
  for (let i = 0; i < runs; i++) {
    const t = await start(kind)
    let entered = 0
    const inHandler = new Promise<void>(resolve => { onEnter = () => { entered = performance.now(); resolve() } })
    const agent = new Agent({ keepAlive: true })
    const reply = get(`${t.url}/hold?ms=${holdMs}`, agent)
    await bounded(inHandler, 10_000, 'the held request never reached its handler')
    onEnter = undefined
    const t0 = performance.now()
    let t1 = 0
    const stopped = t.stop().then(() => { t1 = performance.now() })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([stopped, new Promise(resolve => { timer = setTimeout(resolve, cap) })])
    clearTimeout(timer)
    if (t1 === 0) {
      capped++
      agent.destroy()
      await bounded(stopped, 10_000, 'stop() did not resolve after the client let go')
    }
    ms.push(t1 - t0)
    // What the drain added beyond the request's own remaining time.
    over.push((t1 - entered) - holdMs)
    const res = await reply
    statuses.push(res.statusCode ?? 0)
    if (res.headers.connection === 'close') connectionClose++
    agent.destroy()
  }
  return { ms, over, statuses, connectionClose, capped }
}

async function bounded<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(message)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

serve({ idleStart, idleStop, inflight }, async () => { await idleTarget?.stop() })
