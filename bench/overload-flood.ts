// The overload suite's flood: an open-loop load generator in its own process
// (see child.ts). It sends GET requests at a fixed rate whatever the server
// answers, as many independent clients would, and records each response's
// status and latency; a request with no answer within the timeout is given up
// (its connection reset) and counted as failed. A closed-loop generator
// (wrk, autocannon) sends its next request only when one comes back, so a
// server that answers slowly is sent less: it cannot offer 20× capacity.
import { Agent, request, type ClientRequest } from 'node:http'
import type { Socket } from 'node:net'
import { setPriority } from 'node:os'
import { performance } from 'node:perf_hooks'
import { serve } from './child.ts'
import { quantileSorted } from './stats.ts'

export interface FloodArgs {
  url: string
  /** Requests per second. */
  rate: number
  seconds: number
  /** Milliseconds without an answer before a request counts as failed. */
  timeout: number
  /**
   * Connections open at once, at most; a request that finds all of them busy
   * waits in the client for one (its latency and timeout run from its send).
   */
  maxSockets: number
  /**
   * Connections to open before the flood begins, each with one request to a
   * path the server answers 404 cheaply: clients that are already connected
   * (a proxy's upstream pool, browsers with keep-alive) rather than all of
   * them connecting in the flood's first second.
   */
  warm: number
}

export interface FloodResult {
  /** Requests sent and the rate that was, per second of the window. */
  sent: number
  sentRate: number
  /** Requests not sent because this process fell more than LATE ms behind their time. */
  skipped: number
  /** Answers by kind: 2xx, 503 and any other status; timeouts; connection errors. */
  ok: number
  shed: number
  other: number
  timeouts: number
  /**
   * Where the timed-out requests were: waiting in this client for a free
   * connection (all maxSockets busy), connecting (the server's accept queue
   * full), or sent and not answered.
   */
  timeoutsWhere: { queued: number, connecting: number, sent: number }
  errors: number
  /** Latency of the 2xx answers and of the 503s, ms, from the request's send. */
  okP50: number
  okP99: number
  shedP50: number
  shedP99: number
  /** Connections the client opened during the flood (besides the `warm` ones before it). */
  connections: number
  /** How late the sends were against their schedule, ms (this process's own lag). */
  lagP99: number
  /** The generator's event-loop utilisation over the window: near 1, it was at its limit. */
  elu: number
  /** 2xx and 503 answers per second of the window, by the second they came back in. */
  okPerSecond: number[]
  shedPerSecond: number[]
  /** Error codes seen, with counts. */
  errorCodes: Record<string, number>
}

/** Agents the connections are spread over. */
const AGENTS = 16
/** Connections opened at once before the flood: under the server's accept queue (511 by default). */
const WARM_BATCH = 250
/** Milliseconds behind its time after which a request is skipped rather than sent. */
const LATE = 100

/** Latencies in a growable typed array: up to 200,000 answers a run, no per-sample objects. */
class Samples {
  #data = new Float64Array(1 << 14)
  length = 0
  push (value: number): void {
    if (this.length === this.#data.length) {
      const grown = new Float64Array(this.#data.length * 2)
      grown.set(this.#data)
      this.#data = grown
    }
    this.#data[this.length++] = value
  }

  sorted (): Float64Array { return this.#data.subarray(0, this.length).sort() }
}

const FLOOD_HEADERS = { 'x-overload-flood': '1' }

/** Close with a reset, when connected (one still connecting holds no port in TIME_WAIT). */
function reset (socket: Socket | null): void {
  if (socket !== null && !socket.connecting && !socket.destroyed) socket.resetAndDestroy()
}

/**
 * Keep-alive connections spread over several agents: an agent finds and
 * removes a socket in an array of all of its sockets, which costs more than
 * the request itself once it holds thousands.
 */
class Connections {
  readonly #agents: Agent[]
  readonly #name: string
  #next = 0

  constructor (target: URL, maxSockets: number) {
    const share = Math.ceil(maxSockets / AGENTS)
    this.#agents = Array.from({ length: AGENTS }, () => new Agent({ keepAlive: true, maxSockets: share, maxFreeSockets: share }))
    this.#name = (this.#agents[0] as Agent).getName({ host: target.hostname, port: Number(target.port) })
  }

  /** An agent with an idle connection if one has any, else the next in turn (which opens one, or queues the request). */
  pick (): Agent {
    for (let i = 0; i < AGENTS; i++) {
      const agent = this.#agents[(this.#next + i) % AGENTS] as Agent
      if ((agent.freeSockets[this.#name]?.length ?? 0) > 0) return agent
    }
    this.#next = (this.#next + 1) % AGENTS
    return this.#agents[this.#next] as Agent
  }

  idle (): Socket[] {
    return this.#agents.flatMap(a => (a.freeSockets[this.#name] ?? []) as Socket[])
  }

  /** Open `count` connections, a batch at a time so that the server's accept queue never overflows. */
  async open (target: URL, count: number): Promise<void> {
    for (let opened = 0; opened < count; opened += WARM_BATCH) {
      await Promise.all(Array.from({ length: Math.min(WARM_BATCH, count - opened) }, (_, i) => fetchOnce(this.#agents[i % AGENTS] as Agent, target, '/overload-bench-warm')))
    }
  }

  destroy (): void {
    for (const agent of this.#agents) agent.destroy()
  }
}

/** One GET through an agent; resolves once it is answered or failed. */
function fetchOnce (agent: Agent, target: URL, path: string): Promise<void> {
  return new Promise(resolve => {
    const req = request({ agent, host: target.hostname, port: target.port, path, method: 'GET' }, (res) => {
      res.resume()
      res.once('end', resolve)
      res.once('error', () => resolve())
    })
    req.once('error', () => resolve())
    req.end()
  })
}

async function flood ({ url, rate, seconds, timeout, maxSockets, warm }: FloodArgs): Promise<FloodResult> {
  const target = new URL(url)
  if (target.hostname !== '127.0.0.1') throw new Error(`the flood is only sent to 127.0.0.1, not ${target.hostname}`)
  const connections = new Connections(target, maxSockets)
  // Counted apart from the connections the flood opens.
  await connections.open(target, Math.min(warm, maxSockets))
  const sockets = new Set<Socket>(connections.idle())
  for (const socket of sockets) socket.once('close', () => sockets.delete(socket))
  const okTimes = new Samples()
  const shedTimes = new Samples()
  const lags = new Samples()
  const buckets = Math.ceil(seconds)
  const result = {
    sent: 0,
    skipped: 0,
    ok: 0,
    shed: 0,
    other: 0,
    timeouts: 0,
    timeoutsWhere: { queued: 0, connecting: 0, sent: 0 },
    errors: 0,
    connections: 0,
    okPerSecond: new Array<number>(buckets).fill(0),
    shedPerSecond: new Array<number>(buckets).fill(0),
    errorCodes: {} as Record<string, number>
  }
  // In flight, in the order they were sent: the oldest first, so the sweep stops at the first one still in time.
  const inFlight = new Map<ClientRequest, number>()
  const began = performance.now()
  const ends = began + seconds * 1000
  const count = (perSecond: number[], now: number): void => {
    const i = Math.min(buckets - 1, Math.floor((now - began) / 1000))
    perSecond[i] = (perSecond[i] ?? 0) + 1
  }

  const send = (): void => {
    const sentAt = performance.now()
    result.sent++
    // Marked, so that the server counts the requests of the flood whose route ran (not the warm-up's).
    const req = request({ agent: connections.pick(), host: target.hostname, port: target.port, path: target.pathname, method: 'GET', headers: FLOOD_HEADERS })
    const fail = (err: NodeJS.ErrnoException): void => {
      if (!inFlight.delete(req)) return
      result.errors++
      const code = err.code ?? err.message
      result.errorCodes[code] = (result.errorCodes[code] ?? 0) + 1
    }
    req.once('response', (res) => {
      // A connection cut in the middle of an answer.
      res.on('error', fail)
      res.resume()
      res.once('end', () => {
        if (!inFlight.delete(req)) return
        const now = performance.now()
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) {
          result.ok++
          okTimes.push(now - sentAt)
          if (now < ends) count(result.okPerSecond, now)
        } else if (status === 503) {
          result.shed++
          shedTimes.push(now - sentAt)
          if (now < ends) count(result.shedPerSecond, now)
        } else {
          result.other++
        }
      })
    })
    req.once('socket', (socket: Socket) => {
      if (sockets.has(socket)) return
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      result.connections++
    })
    req.on('error', fail)
    inFlight.set(req, sentAt)
    req.end()
  }

  // Timeouts are swept from the oldest request on, not set one timer each. A
  // client that gives up resets its connection: with FIN, each would hold a
  // port of this one address in TIME_WAIT for a minute, and a flood gives up
  // on thousands a second.
  const sweep = (): void => {
    const now = performance.now()
    for (const [req, sentAt] of inFlight) {
      if (now - sentAt < timeout) break
      inFlight.delete(req)
      result.timeouts++
      const where = req.socket === null ? 'queued' : req.socket.connecting ? 'connecting' : 'sent'
      result.timeoutsWhere[where]++
      reset(req.socket)
      req.destroy()
    }
  }
  const sweeper = setInterval(sweep, 10)

  const elu = performance.eventLoopUtilization()
  // Each tick sends every request that has come due since the last one. One
  // due longer ago than LATE is skipped, not sent in a burst: when this
  // process cannot keep the pace, the flood is lighter (and says so), not
  // bunched.
  await new Promise<void>(resolve => {
    const interval = 1000 / rate
    const total = Math.floor(seconds * rate)
    let next = 0
    const tick = (): void => {
      const now = performance.now()
      const due = Math.min(Math.floor((Math.min(now, ends) - began) / interval) + 1, total)
      for (; next < due; next++) {
        const lag = now - (began + next * interval)
        if (lag > LATE) {
          result.skipped++
          continue
        }
        lags.push(lag)
        send()
      }
      if (now >= ends) {
        clearInterval(ticker)
        resolve()
      }
    }
    const ticker = setInterval(tick, 1)
  })
  const busy = performance.eventLoopUtilization(elu).utilization
  // Those still in flight get their full timeout.
  while (inFlight.size > 0) await new Promise(resolve => setTimeout(resolve, 20))
  clearInterval(sweeper)
  for (const socket of sockets) reset(socket)
  connections.destroy()

  const ok = okTimes.sorted()
  const shed = shedTimes.sorted()
  const lag = lags.sorted()
  return {
    ...result,
    sentRate: result.sent / seconds,
    okP50: quantileSorted(ok, 0.5),
    okP99: quantileSorted(ok, 0.99),
    shedP50: quantileSorted(shed, 0.5),
    shedP99: quantileSorted(shed, 0.99),
    lagP99: quantileSorted(lag, 0.99),
    elu: busy
  }
}

// The prober shares this core: it goes first whenever it has work, so what
// it measures is the server's delay, not this process's.
setPriority(10)
// Every reset connection makes an error nobody reads: without a stack it costs
// a fraction (and tsx's source maps are not consulted for it).
Error.stackTraceLimit = 0
serve({ flood })
