// 20 keep-alive clients send back to back while stop() runs, over HTTP, HTTPS
// and HTTP/2. Each outcome must be a full 200, a 503 with Connection: close
// (HTTP/2: a stream refused by GOAWAY), or a new connection refused. Never a
// reset, a hang-up or a truncated body. Repeated, since a race shows only
// sometimes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { connect as h2connect, constants as h2, type ClientHttp2Session } from 'node:http2'
import { createPool, type ListenerConfig } from 'fastify-pool'
import { certPath, pem, within } from './fixtures/lifecycle.ts'

const CLIENTS = 20
const ROUNDS = 20
// Enough for several TCP segments: a truncated body shows.
const BODY = 'x'.repeat(20_000)
// Bounds each client, so that a test that goes wrong still ends.
const MAX_REQUESTS = 2000

interface Tally { ok: number, refused503: number, goaway: number, connRefused: number, bad: string[] }

type Protocol = 'http' | 'https' | 'h2'

for (const protocol of ['http', 'https', 'h2'] as const) {
  test(`${CLIENTS} keep-alive clients sending while stop() runs see no reset (${protocol}, ${ROUNDS} rounds)`, { timeout: 120_000 }, async () => {
    const total: Tally = { ok: 0, refused503: 0, goaway: 0, connRefused: 0, bad: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const tally = await oneRound(protocol)
      total.ok += tally.ok
      total.refused503 += tally.refused503
      total.goaway += tally.goaway
      total.connRefused += tally.connRefused
      total.bad.push(...tally.bad.map(b => `round ${round + 1}: ${b}`))
    }
    if (process.env.SHOW_TALLY !== undefined) console.log(protocol, JSON.stringify(total))
    assert.deepEqual(total.bad, [], `every outcome is a full 200, a refusal or a refused connection (${JSON.stringify({ ...total, bad: total.bad.length })})`)
    assert.ok(total.ok > CLIENTS * ROUNDS, 'the clients were served before the drain')
    assert.ok(total.connRefused + total.refused503 + total.goaway >= CLIENTS * ROUNDS, 'every client ended on a refusal')
  })
}

async function oneRound (protocol: Protocol): Promise<Tally> {
  const secure = protocol !== 'http'
  const pool = createPool({
    servers: [{
      name: 'a',
      listen: '127.0.0.1:0',
      keepAliveTimeout: 60_000,
      ...(protocol === 'h2' ? { http2: true } : {}),
      ...(secure ? { tls: { cert: certPath('server.crt'), key: certPath('server.key') } } : {})
    } satisfies ListenerConfig],
    handlers: async (app) => { app.get('/', async () => BODY) }
  })
  await pool.start()
  const url = pool.load('a')?.url as string
  const tally: Tally = { ok: 0, refused503: 0, goaway: 0, connRefused: 0, bad: [] }
  let served = 0
  let enough!: () => void
  const warmedUp = new Promise<void>(resolve => { enough = resolve })
  const onOk = (): void => { tally.ok++; if (++served === CLIENTS * 5) enough() }
  const clients = Array.from({ length: CLIENTS }, () => protocol === 'h2' ? h2Client(url, tally, onOk) : h1Client(url, secure, tally, onOk))
  try {
    await within(20_000, warmedUp, 'clients warming up')
    const reports = await within(20_000, pool.stop({ timeout: 10_000 }), 'stop()')
    if (reports[0]?.cut !== 0) tally.bad.push(`stop() cut ${reports[0]?.cut}`)
    await within(20_000, Promise.all(clients), 'clients ending')
  } finally {
    await pool.stop({ timeout: 0 })
  }
  return tally
}

/** Sends GET / back to back on one keep-alive connection (a new one after a close) until refused. */
async function h1Client (url: string, secure: boolean, tally: Tally, onOk: () => void): Promise<void> {
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: pem('ca.crt') }) : new HttpAgent({ keepAlive: true, maxSockets: 1 })
  const send = secure ? httpsRequest : httpRequest
  try {
    for (let i = 0; i < MAX_REQUESTS; i++) {
      const outcome = await new Promise<string>((resolve) => {
        const req = send(url, { agent }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => { body += chunk })
          res.on('end', () => {
            if (res.statusCode === 200 && body === BODY) resolve('ok')
            else if (res.statusCode === 503 && res.headers.connection === 'close') resolve('503')
            else resolve(`status ${res.statusCode} with ${body.length} bytes, connection ${res.headers.connection}`)
          })
          res.on('error', (err: NodeJS.ErrnoException) => resolve(`response error ${err.code ?? err.message}`))
        })
        req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : `request error ${err.code ?? ''} ${err.message}`))
        req.end()
      })
      if (outcome === 'ok') { onOk(); continue }
      if (outcome === '503') tally.refused503++
      else if (outcome === 'refused') tally.connRefused++
      else tally.bad.push(outcome)
      return
    }
  } finally {
    agent.destroy()
  }
}

/** Sends GET / back to back as streams of one HTTP/2 session (a new one after a GOAWAY) until refused. */
async function h2Client (url: string, tally: Tally, onOk: () => void): Promise<void> {
  let session: ClientHttp2Session | undefined
  try {
    for (let i = 0; i < MAX_REQUESTS; i++) {
      if (session === undefined || session.closed || session.destroyed) {
        session?.destroy()
        const s = h2connect(url, { ca: pem('ca.crt') })
        session = s
        const connected = await new Promise<string>((resolve) => {
          s.once('connect', () => resolve('connected'))
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : `session error ${err.code ?? err.message}`))
        })
        if (connected === 'refused') { tally.connRefused++; return }
        if (connected !== 'connected') { tally.bad.push(connected); return }
        s.on('error', () => {})
      }
      const outcome = await h2Get(session)
      if (outcome === 'ok') { onOk(); continue }
      if (outcome === 'goaway') { tally.goaway++; continue }
      tally.bad.push(outcome)
      return
    }
  } finally {
    session?.destroy()
  }
}

function h2Get (session: ClientHttp2Session): Promise<string> {
  return new Promise((resolve) => {
    let stream
    try {
      stream = session.request({ ':path': '/' })
    } catch (err) {
      // The session received a GOAWAY: no new stream on it.
      const code = (err as NodeJS.ErrnoException).code
      resolve(code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' ? 'goaway' : `request error ${code}`)
      return
    }
    let status = 0
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => resolve(status === 200 && body === BODY ? 'ok' : `status ${status} with ${body.length} bytes`))
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // A stream above the GOAWAY's last stream id was never processed: the client may retry it elsewhere.
      if (stream.rstCode === h2.NGHTTP2_REFUSED_STREAM || err.code === 'ERR_HTTP2_GOAWAY_SESSION') resolve('goaway')
      else resolve(`stream error ${err.code} rst ${stream.rstCode}`)
    })
  })
}
