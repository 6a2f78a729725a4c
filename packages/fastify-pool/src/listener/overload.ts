// Load shedding per listener, inside one process (docs/overload.md).
//
// Every listener of a process shares one event loop, and libuv reads every
// ready socket in one turn (and accepts one new connection per listening
// socket per turn): a flood on one listener fills each turn with its
// requests, and the other listeners' probes wait behind them, their new
// connections unaccepted. So each listener may spend a tenth of its `target`
// (its queueing-delay target, 100 ms: 10 ms) of loop time per turn while
// another listener is being served (a quarter while none is); its
// requests beyond that wait in a queue of its own and are served in the next
// turns: in arrival order while the oldest has waited less than `target`,
// newest first once it has (a request that has just arrived still has a
// client waiting for it; Facebook's "Fail at Scale", adaptive LIFO). One
// that waits past `maxWait` is answered 503 with Retry-After, without
// running its route (CoDel's bounded sojourn). The other listeners'
// requests are read in the same turn and served at once: a turn lasts a few
// milliseconds, whatever the flood. How many requests a turn admits follows
// from what they cost, measured: a 2 ms route gets two or three a turn, a
// 50 µs one a hundred.
//
// Why a queue rather than a 503 at once: a client that gets a 503 sends
// again at once (a load generator, a retrying proxy); answering each costs a
// read, a parse and a write, and 900 such clients cost more than the route.
// Held for up to maxWait, each costs that once per maxWait. And while the
// listener refuses far more than it serves, an HTTP/1 connection it refused
// is parked (not read) for Retry-After or until the queue has room: its
// client's next request waits in the kernel, where it costs nothing, instead
// of being parsed only to be refused again. A connection it served is read
// at once: its next request is as likely as any to be served (and behind a
// proxy's pool, it is another client's).
//
// Time is measured with the loop's own clock: the work between two requests
// is the first one's (its handler and the promises it resolved), and a turn
// ends when the loop waited for I/O (its idle time grew) or reached its
// check phase (an immediate, armed only once a turn has two requests).
// Nothing is allocated per request while a listener is under its budget.
import { performance } from 'node:perf_hooks'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { OverloadSettings, OverloadStatus } from '../config/types.ts'
import { owed, type Http1Socket } from './connections.ts'
import { AcceptProbe, type ProbeTarget } from './accept-probe.ts'

/** More waiting than this and the oldest is answered at once: memory stays bounded under any flood. */
export const MAX_WAITING = 4096
/**
 * Refused connections are parked once the 503s outnumber the requests
 * admitted by more than REFUSED_PER_ADMITTED (in a window), and until they
 * fall under STILL_REFUSED_PER_ADMITTED. Two thresholds: parking cuts the
 * 503s of clients that send again at once (measured: from about ten per
 * request served to 1.6), and with one threshold it would turn itself off
 * every other window.
 */
const REFUSED_PER_ADMITTED = 2
const STILL_REFUSED_PER_ADMITTED = 0.5
/** What reading and parsing one request costs, about, ms: bounds how many parked connections a turn reads again past their time. */
const LATE_READ_MS = 0.05
/** The window over which refusals and admissions are counted; the first one starts at a shedding episode's first 503. */
const WINDOW_MS = 250
/** How long without a 503 ends a shedding episode (and its log line). */
const QUIET_MS = 1000
/** While a listener holds requests, how long another listener's last request keeps it to its budget (a kubelet probes every 10 s). */
const WATCHED_MS = 60_000

type Request = IncomingMessage | Http2ServerRequest
type Response = ServerResponse | Http2ServerResponse
type RequestHandler = (req: Request, res: Response) => void
interface Held { run: RequestHandler, req: Request, res: Response, at: number }

/**
 * The loop of this process, as the gates see it: which turn it is, and whose
 * work runs since the last mark. One per process, whatever the number of
 * pools: they share the loop.
 */
class LoopTurns {
  turn = 1
  /** The gate whose request ran last: the work since `mark` is its. */
  owner: Gate | undefined
  mark = 0
  /** The gate whose request came last, and when: a gate learns from it when another gate last had a request. */
  last: Gate | undefined
  lastAt = 0
  #idle = -1
  #armed = false
  readonly #waiting = new Set<Gate>()

  /** The gate that spent the most of this turn, and how much. */
  #heaviest: Gate | undefined
  #most = 0

  /** A request arrives: charge the work since the last mark to its owner, and tell whether a new turn began. */
  enter (): number {
    const now = performance.now()
    const idle = performance.nodeTiming.idleTime
    if (idle !== this.#idle) {
      // The loop waited for I/O since: a new turn, and what ran before it is nobody's.
      this.#idle = idle
      this.#next()
      this.owner = undefined
    } else {
      this.#charge(now)
      if (!this.#armed) this.#arm()
    }
    this.mark = now
    return now
  }

  #charge (now: number): void {
    const owner = this.owner
    if (owner === undefined) return
    const spent = owner.charge(this.turn, now - this.mark, now)
    if (spent > this.#most) {
      this.#most = spent
      this.#heaviest = owner
    }
  }

  #next (): void {
    this.turn++
    this.#heaviest = undefined
    this.#most = 0
  }

  /** A gate closes: nothing here keeps it (nor its logger) alive. */
  forget (gate: Gate): void {
    this.#waiting.delete(gate)
    if (this.last === gate) this.last = undefined
    if (this.owner === gate) this.owner = undefined
    if (this.#heaviest === gate) this.#heaviest = undefined
  }

  /** `gate` has requests waiting: serve them at the end of this turn. */
  waiting (gate: Gate): void {
    this.#waiting.add(gate)
    if (!this.#armed) this.#arm()
  }

  /**
   * The end of this turn, in its check phase. A kept (ref'd) immediate: an
   * unref'd one does not keep the loop from blocking in its poll, and the
   * requests held or the connections parked would then wait for unrelated
   * I/O or a timer (measured: an unref'd immediate ran 300 ms late beside a
   * 300 ms timer). It is armed only while something waits, and runs once.
   */
  #arm (): void {
    this.#armed = true
    setImmediate(this.#end)
  }

  /** The check phase: the turn ends. Each gate with requests waiting serves some of them within its allowance of the next. */
  readonly #end = (): void => {
    this.#armed = false
    let now = performance.now()
    this.#charge(now)
    // Until the next request, the loop runs timers and writes: mostly the
    // responses of the listener that spent the most, whose allowance they count in.
    const heaviest = this.#heaviest
    this.owner = undefined
    this.#next()
    for (const gate of this.#waiting) {
      now = gate.serveWaiting(now, this.turn)
      if (gate.waitingCount === 0 && gate.parkedCount === 0) this.#waiting.delete(gate)
    }
    this.owner ??= heaviest
    this.mark = now
    if (this.#waiting.size > 0) this.#arm()
  }
}

const loop = new LoopTurns()

const SHED_BODY = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The server is overloaded; retry later' })
const SHED_LENGTH = Buffer.byteLength(SHED_BODY)

/** What a gate asks of its listener's server (ServerHandle): a shorter accept queue while the listener is overloaded. */
export interface AcceptQueue {
  /** Shorten the queue (true) or give it back its length (false); the length when it changed it, else undefined. */
  shortenAcceptQueue: (short: boolean) => number | undefined
  /** Its length now, when the pool sets it. */
  readonly acceptQueue: number | undefined
  /** Call `listener` for each connection the server accepts (undefined: stop); true from it: the connection was its own, closed. */
  watchAccepts: (listener: ((socket: Socket) => boolean) | undefined) => void
  /** Where the accept queue may be timed from this process, or undefined (AcceptProbe). */
  readonly probeTarget: ProbeTarget | undefined
}

/** One listener's load shedding. It lives as long as the listener; every generation's requests pass through it. */
export class Gate {
  #settings: OverloadSettings
  /** A tenth of the target, ms: the loop time per turn the listener may take while another listener is served. */
  #budget = 0
  /**
   * What a turn may take before requests wait: the budget while someone
   * waits behind this listener's turns (another listener of the process had
   * a request in the last second, or in the last minute while this one
   * holds requests; or one of its own probes came while it was over), a
   * quarter of the target otherwise. Holding requests has a cost: requests
   * kept past a turn outlive V8's young generation, and a saturated
   * benchmark of a cheap route held to the budget took 1.22 to 1.32 times
   * bare Fastify's CPU per request (1.06 to 1.10 with the gate off). With a
   * quarter while calm whatever the others did, their probes waited up to
   * four turns of 25 ms at about this listener's capacity (suite 9 at 1×:
   * p99 93 to 130 ms; 47 to 51 with this rule).
   */
  #allowance = 0
  /** When someone last waited behind this gate's turns: another gate's request, or one of its own exempt ones while over. */
  #othersAt = -Infinity
  /** Refused connections parked since the gate was made. */
  #parkedTotal = 0
  /** From the first request held until, for a second, nothing waited a quarter of the target. */
  #holding = false
  #calmSince = 0
  #exact = new Set<string>()
  /** `/x/` for each `/x/*` (its `/x` is in #exact). */
  #prefixes: string[] = []
  #log: FastifyBaseLogger | undefined
  /** The turn `spent` and `admitted` count in. */
  #turn = 0
  #spent = 0
  #admitted = 0
  /** Milliseconds of loop time one admitted request takes (a moving average), 0 before one was measured. */
  #cost = 0
  /** Oldest first, from #head (served from there while the queue is young, from the end once it stands). */
  #held: Array<Held | undefined> = []
  #head = 0
  #shed = 0
  #delay = 0
  #lastWaitAt = 0
  /** An overload episode: from its first 503, or from the first probe that found its accept queue standing, until a second without either. */
  #episode: { since: number, shed: number, last: number, timer: NodeJS.Timeout, connections: boolean } | undefined
  /**
   * Refused HTTP/1 connections not read for now, their clients' next
   * requests left in the kernel's buffer, each with the time by which it is
   * read again: once to one and a half times Retry-After after its 503
   * (spread, so that those refused in one turn are not all read again in
   * one). In order of arrival and read from the oldest (an older one's later
   * time holds a younger one back, never past its own one and a half
   * times); sooner whenever the queue has room (#unpark).
   */
  readonly #parked = new Map<Socket, number>()
  /**
   * Whether a refused connection is parked: once a window shows the
   * listener refusing more than REFUSED_PER_ADMITTED times what it admits,
   * until one shows under STILL_REFUSED_PER_ADMITTED. Under that, 503s cost
   * a few percent of the loop, and a connection's next request may be
   * another client's (a proxy's pool): it is read at once. Not from an
   * episode's first 503 on trial either: behind a LIFO pool, the requests
   * sent on the connections parked in that first window waited a second and
   * more (suite 9 at 2×: admitted p99 1.5 to 1.8 s and up to 235 timeouts,
   * against 323 ms and none).
   */
  #parkRefused = false
  #admittedHolding = 0
  #windowAt = 0
  #windowShed = 0
  #windowAdmitted = 0
  /** A drain began (release()): nothing is parked any more. */
  #released = false
  /**
   * The listener's server, whose accept queue is shortened once the queue of
   * requests stands (its oldest waited the target, or maxWait if shorter;
   * ServerHandle.shortenAcceptQueue): the flood's new connections
   * would wait in the kernel's queue of 511 for seconds, one accepted a
   * turn, and their requests be served after their clients gave up (suite
   * 9 at 5×: goodput 0.94 and 0.96, against 0.78 to 0.84 with Node's 511).
   * Not at a shedding episode's first 503: by then (maxWait) the queue is
   * full, and a shorter length only stops it from growing while it drains
   * at one a turn (5×: 0.85). Given back once the queue of requests
   * has not stood for a second and nothing waits (a timer checks, so that a
   * flood that stops dead does not leave it short), when a drain begins
   * (release()) and when the listener stops.
   */
  #server: AcceptQueue | undefined
  /** While the accept queue is short: the timer that gives it back its length. */
  #shortQueue: NodeJS.Timeout | undefined
  /** When the queue of requests last stood (the accept queue is short until a second after). */
  #stoodAt = 0
  /**
   * Times the accept queue (accept-probe.ts): a flood of new connections
   * (clients without keep-alive, one request each) comes no faster than the
   * turns accept it, one a turn, its requests are served as they come and
   * the queue of requests never stands: without this, its clients waited a
   * second in the kernel's queue of 511 while the status said calm (hey -c
   * 500 -disable-keepalive on a 2 ms route: p50 1.1 s, 417 waiting at 2 s).
   * Whether a connection was accepted at every turn does not tell: a
   * saturated loop serving 20 such clients accepts one at every turn, and
   * each waits 2 ms.
   */
  readonly #probe: AcceptProbe
  /** What the probe measured last, ms, and when. */
  #acceptWait = 0
  #acceptWaitAt = -Infinity
  #acceptStoodAt = -Infinity
  /** The 'finish' listener that parks a refused response's connection (one function per gate, not a closure per request). */
  readonly #parkAfterRefused: (this: ServerResponse) => void

  constructor (settings: OverloadSettings, log: FastifyBaseLogger | undefined) {
    this.#settings = settings
    this.#budget = budgetOf(settings)
    this.#allowance = quarterOf(settings)
    this.#log = log
    this.#setExempt(settings.exempt)
    this.#probe = new AcceptProbe(() => this.#server?.probeTarget, settings.target, (ms, now) => this.#probed(ms, now))
    const gate = this
    this.#parkAfterRefused = function parkRefused (this: ServerResponse) {
      if (!gate.#holding) return
      // Spread over half as long again: the connections refused in one turn are not all read again in one.
      gate.#park(this, performance.now() + gate.#settings.retryAfter * 1000 * (1 + Math.random() / 2))
    }
  }

  /** A new connection: the probe's own, or one that may start a probe. */
  readonly #accepted = (socket: Socket): boolean => this.#probe.accepted(socket)

  /** The probe waited `ms` (or has waited so far): the accept queue stands once that is the target, or maxWait if shorter. */
  #probed (ms: number, now: number): void {
    this.#acceptWait = ms
    this.#acceptWaitAt = now
    const { target, maxWait } = this.#settings
    if (ms >= Math.min(target, maxWait) && !this.#released) this.#acceptQueueStands(now)
  }

  /** New settings (a reload), and the paths the listener's routes add (health, control, metrics). */
  configure (settings: OverloadSettings, exempt: readonly string[], log: FastifyBaseLogger | undefined, server?: AcceptQueue): void {
    if (this.#server !== server) this.#server?.watchAccepts(undefined)
    this.#server = server
    server?.watchAccepts(this.#accepted)
    this.#probe.every = settings.target
    this.#settings = settings
    this.#budget = budgetOf(settings)
    this.#allowance = quarterOf(settings)
    this.#log = log
    this.#setExempt([...settings.exempt, ...exempt])
    // A new generation serves (a start after a stop): connections may be parked again.
    this.#released = false
  }

  /** The request listener that admits `handler`'s requests, holds them, or answers 503. */
  wrap (handler: RequestHandler): RequestHandler {
    const gate = this
    return function admit (req, res) {
      const now = loop.enter()
      if (loop.last !== gate) gate.#follows(loop.last, now)
      loop.lastAt = now
      if (gate.#turn !== loop.turn) gate.#newTurn(loop.turn, now)
      const under = gate.#spent < gate.#allowance
      if (under || gate.#isExempt(req.url)) {
        // A probe of its own came while it was over: it waits behind these turns too.
        if (!under) gate.#othersAt = now
        gate.#admitted++
        loop.owner = gate
        // Holding requests: what it admits is weighed against what it refuses (probes aside).
        if (gate.#holding && !gate.#isExempt(req.url)) gate.#admittedHolding++
        handler(req, res)
        return
      }
      gate.#hold({ run: handler, req, res, at: now })
    }
  }

  get waitingCount (): number { return this.#held.length - this.#head }

  /** @internal connections parked (their next request left in the kernel). */
  get parkedCount (): number { return this.#parked.size }

  get status (): OverloadStatus {
    const cost = this.#cost
    return {
      shedding: this.#episode !== undefined && this.#episode.shed > 0,
      connectionsWait: performance.now() - this.#acceptStoodAt < QUIET_MS,
      acceptWait: performance.now() - this.#acceptWaitAt < QUIET_MS ? Math.round(this.#acceptWait) : 0,
      shed: this.#shed,
      waiting: this.waitingCount,
      parked: this.#parkedTotal,
      target: this.#settings.target,
      delay: performance.now() - this.#lastWaitAt > QUIET_MS ? 0 : Math.round(this.#delay * 10) / 10,
      // What a turn admits now: the allowance is the budget while someone waits behind this listener, a quarter of the target otherwise.
      limit: cost > 0 ? Math.max(1, Math.floor(this.#allowance / cost)) : undefined,
      acceptQueue: this.#server?.acceptQueue
    }
  }

  /** @internal the loop charges the work since its last mark; returns what the gate spent in this turn. */
  charge (turn: number, ms: number, now: number): number {
    if (this.#turn !== turn) this.#newTurn(turn, now)
    this.#spent += ms
    return this.#spent
  }

  /**
   * @internal The end of a turn: answer those that waited past maxWait, then
   * run waiting requests within the allowance of the new turn. Returns the time after.
   */
  serveWaiting (now: number, turn: number): number {
    const { maxWait, target } = this.#settings
    const budget = this.#budget
    // Those that arrived in one turn expire in one turn: at most half a budget of
    // answers a turn (over TLS each costs a record), the rest a turn later.
    const refusing = now
    // The queue stands: its oldest has waited the target (or maxWait, if shorter: it is refused then).
    const first = this.#oldest()
    if (first !== undefined && now - first.at >= Math.min(target, maxWait) && !this.#released) {
      this.#stoodAt = now
      if (this.#shortQueue === undefined) this.#shortenAcceptQueue()
    }
    for (let oldest = this.#oldest(); oldest !== undefined && now - oldest.at >= maxWait; oldest = this.#oldest()) {
      this.#dropOldest()
      this.#refuse(oldest, now)
      if ((this.#shed & 15) === 0 && performance.now() - refusing > budget / 2) break
    }
    now = performance.now()
    if (this.#turn !== turn) this.#newTurn(turn, now)
    const allowance = this.#allowance
    // Async routes run on in promises after this loop: the measured cost bounds how many start.
    let runs = this.#cost > 0 ? Math.max(1, Math.floor((allowance - this.#spent) / this.#cost)) : 1
    const began = now
    while (runs > 0 && this.#spent + (now - began) < allowance && this.waitingCount > 0) {
      // In order while the queue is young; newest first once its oldest has waited the target.
      const oldest = this.#oldest() as Held
      let held: Held
      if (now - oldest.at < target) {
        held = oldest
        this.#dropOldest()
      } else held = this.#held.pop() as Held
      if (gone(held)) continue
      runs--
      this.#admitted++
      this.#admittedHolding++
      const waited = now - held.at
      this.#delay = this.#delay === 0 ? waited : this.#delay * 0.8 + waited * 0.2
      this.#lastWaitAt = now
      held.run(held.req, held.res)
      now = performance.now()
    }
    this.#spent += now - began
    if (this.waitingCount === 0) this.#clear()
    this.#unpark(now)
    // The promises of the last one run after this: they are this gate's work.
    loop.owner = this
    return now
  }

  /** This gate's request comes after `previous`'s: each learns that the other had one. */
  #follows (previous: Gate | undefined, now: number): void {
    if (previous !== undefined) {
      previous.#othersAt = now
      this.#othersAt = loop.lastAt
    }
    loop.last = this
  }

  #newTurn (turn: number, now: number): void {
    this.#allowance = now - this.#othersAt < (this.#holding ? WATCHED_MS : QUIET_MS) ? this.#budget : quarterOf(this.#settings)
    // A turn whose work was measured tells what a request costs.
    if (this.#spent > 0 && this.#admitted > 0) {
      const each = this.#spent / this.#admitted
      this.#cost = this.#cost === 0 ? each : this.#cost * 0.8 + each * 0.2
    }
    // Calm again: for a second, nothing waited a quarter of the target.
    if (this.#holding) {
      const quarter = quarterOf(this.#settings)
      const oldest = this.#oldest()
      if (oldest !== undefined && now - oldest.at >= quarter) this.#calmSince = 0
      else if (this.#calmSince === 0) this.#calmSince = now
      else if (now - this.#calmSince > QUIET_MS) {
        // Those still parked are read again as the ends of turns read them (about two turns of admissions and
        // a budget's worth of those whose time came, a turn), not all at once: at a flood's end their clients
        // close them together, and reading thousands of closed connections in one turn made the other
        // listeners' probes wait 140 to 170 ms (CI, 20×, a second after the flood).
        this.#holding = false
        this.#parkRefused = false
      }
      if (now - this.#windowAt >= WINDOW_MS) {
        const refused = this.#shed - this.#windowShed
        const admitted = this.#admittedHolding - this.#windowAdmitted
        this.#parkRefused = refused > (this.#parkRefused ? STILL_REFUSED_PER_ADMITTED : REFUSED_PER_ADMITTED) * admitted
        this.#openWindow(now, this.#shed)
      }
    }
    this.#turn = turn
    this.#spent = 0
    this.#admitted = 0
  }

  #hold (held: Held): void {
    if (!this.#holding) {
      this.#holding = true
      this.#calmSince = 0
      // Counted from here: a window left from an earlier episode would weigh what it refused then.
      this.#openWindow(held.at, this.#shed)
    }
    if (this.waitingCount >= MAX_WAITING) {
      const oldest = this.#oldest() as Held
      this.#dropOldest()
      this.#refuse(oldest, held.at)
    }
    this.#held.push(held)
    this.#lastWaitAt = held.at
    loop.waiting(this)
  }

  /** A window of refusals and admissions begins at `now`, `shed` refusals counted before it. */
  #openWindow (now: number, shed: number): void {
    this.#windowAt = now
    this.#windowShed = shed
    this.#windowAdmitted = this.#admittedHolding
  }

  #oldest (): Held | undefined { return this.#held[this.#head] }

  #dropOldest (): void {
    this.#held[this.#head++] = undefined
    // Compact now and then, so that the array does not grow for ever under a steady flood.
    if (this.#head >= 1024 && this.#head * 2 >= this.#held.length) {
      this.#held = this.#held.slice(this.#head)
      this.#head = 0
    }
  }

  #clear (): void {
    this.#held = []
    this.#head = 0
  }

  /**
   * Answer 503 with Retry-After, without the route, keeping the connection;
   * a client already gone is skipped. Over HTTP/1, while the listener
   * refuses more than twice what it admits, the connection is then not read
   * for Retry-After: a client that sends again at once waits in the
   * kernel's buffer, where it costs nothing, rather than costing a parse and
   * a 503 twice a second (an HTTP/2 session carries other streams: it is
   * left alone).
   */
  #refuse (held: Held, now: number): void {
    if (gone(held)) return
    const res = held.res as ServerResponse
    if (res.headersSent) return
    this.#shed++
    this.#noteShed(now)
    const { retryAfter } = this.#settings
    res.writeHead(503, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': SHED_LENGTH,
      'retry-after': String(retryAfter),
      'cache-control': 'no-store'
    })
    if (retryAfter > 0 && this.#parkRefused && (held.res as { stream?: unknown }).stream === undefined) res.once('finish', this.#parkAfterRefused)
    res.end(SHED_BODY)
  }

  /** Read every parked connection again: a drain begins, and what their clients sent must get its answer. */
  release (): void {
    // Until a new generation serves: a connection parked now would look idle to the drain, which would close it on its client's request.
    this.#released = true
    this.#server?.watchAccepts(undefined)
    this.#probe.close()
    this.#unparkAll()
    // And the accept queue has its length again (a drain, or overload turned off by a reload); not shortened until then.
    this.#restoreAcceptQueue()
  }

  /**
   * Stop reading a refused response's connection until `deadline` at the
   * latest (#unpark reads it sooner when there is room). It runs after
   * Node's own 'finish' listener (which may resume the socket to discard an
   * unread body); Node's server stops and starts reading on the socket's
   * 'pause' and 'resume' events. Its client's next request waits in the
   * kernel's buffer, where it costs nothing, rather than being read, parsed
   * and queued only to be refused again: the turns stay short, and the CPU
   * goes to the routes.
   */
  #park (res: ServerResponse, deadline: number): void {
    if (this.#released) return
    const socket = res.socket ?? res.req?.socket
    // A pipelining client has more requests on the way: those are answered in order first.
    if (socket == null || socket.destroyed || this.#parked.has(socket) || owed(socket as Http1Socket) > 0) return
    socket.pause()
    this.#parkedTotal++
    this.#parked.set(socket, deadline)
    loop.waiting(this)
  }

  /**
   * The end of a turn: read parked connections again, oldest first, until
   * about two turns of admissions wait (one read again may have nothing to
   * send yet), and every one whose latest time has come, whatever the room.
   * The listener does not idle while requests wait in the kernel.
   */
  #unpark (now: number): void {
    if (this.parkedCount === 0) return
    const perTurn = this.#cost > 0 ? Math.max(1, Math.floor(this.#allowance / this.#cost)) : 1
    // Past the room, those whose time has come: at most a budget's worth of reads a turn (a read and a parse cost
    // about LATE_READ_MS), the rest a turn later. Thousands read again in one turn (a flood's clients all closing
    // their parked connections at its end) made it last over 100 ms.
    const room = { left: 2 * perTurn - this.waitingCount, late: Math.max(16, Math.round(this.#budget / LATE_READ_MS)) }
    readAgain(this.#parked, now, room)
  }

  #unparkAll (): void {
    for (const socket of this.#parked.keys()) if (!socket.destroyed) socket.resume()
    this.#parked.clear()
  }

  #shortenAcceptQueue (): void {
    // Nothing to give back when it did not change (a socket the pool does not set).
    if (this.#server?.shortenAcceptQueue(true) === undefined) return
    const timer = setInterval(() => {
      if (performance.now() - this.#stoodAt > QUIET_MS && this.waitingCount === 0) this.#restoreAcceptQueue()
    }, QUIET_MS / 2)
    timer.unref()
    this.#shortQueue = timer
  }

  #restoreAcceptQueue (): void {
    if (this.#shortQueue === undefined) return
    clearInterval(this.#shortQueue)
    this.#shortQueue = undefined
    this.#server?.shortenAcceptQueue(false)
  }

  /** A 503: it begins a shedding episode (one warning when it begins, one when a second passed without a 503) or counts in it. */
  #noteShed (now: number): void {
    const episode = this.#episode
    if (episode !== undefined) {
      // The window of an episode that began with the accept queue starts at its first 503.
      if (episode.shed === 0) this.#openWindow(now, this.#shed - 1)
      episode.shed++
      episode.last = now
      return
    }
    // Refusals are weighed against admissions from this 503 on.
    this.#openWindow(now, this.#shed - 1)
    const { target, maxWait } = this.#settings
    this.#beginEpisode(now, 1, 'requests', `requests wait their turn (newest first once they wait over ${target} ms), and those waiting over ${maxWait} ms get 503`)
  }

  /**
   * The probe waited in the accept queue the target (or maxWait): an
   * overload episode begins (or goes on) though no request may wait, the
   * wait being the kernel's. Its queue keeps its length: the SYNs a short
   * queue drops are sent again after one second, then three, seven...
   * (exponential backoff), and clients that connect for each request then
   * leave the listener idle (hey -c 500 -disable-keepalive on a 2 ms route:
   * 195 requests a second of 470, p99 15 s, against 468 and 2.8 s with 511).
   * Nor are connections accepted faster by turns without routes: each costs
   * the loop about 150 µs (accept, read, parse, close), and at twice the
   * capacity the queue stayed full while the routes lost 12 % (docs/overload.md).
   */
  #acceptQueueStands (now: number): void {
    this.#acceptStoodAt = now
    const episode = this.#episode
    if (episode !== undefined) {
      episode.last = now
      episode.connections = true
      return
    }
    this.#beginEpisode(now, 0, 'connections', `new connections wait in the kernel's accept queue (one of its own waited ${Math.round(this.#acceptWait)} ms or more; one is accepted a turn)`)
  }

  #beginEpisode (now: number, shed: number, cause: 'requests' | 'connections', what: string): void {
    const { target, maxWait } = this.#settings
    const timer = setInterval(() => this.#quiet(), QUIET_MS / 2)
    timer.unref()
    this.#episode = { since: now, shed, last: now, timer, connections: cause === 'connections' }
    const acceptQueue = this.#shortQueue === undefined ? undefined : this.#server?.acceptQueue
    const queue = acceptQueue === undefined ? '' : `; its accept queue holds ${acceptQueue} new connections until it is calm`
    this.#log?.warn({ target, maxWait, acceptQueue, cause }, `overloaded: ${what}${queue}`)
  }

  #quiet (): void {
    const episode = this.#episode
    if (episode === undefined) return
    const now = performance.now()
    if (now - episode.last < QUIET_MS || this.waitingCount > 0) return
    this.#endEpisode('')
  }

  /** The episode's second line: it was quiet for a second, or the listener stopped (`why`). */
  #endEpisode (why: string): void {
    const episode = this.#episode
    if (episode === undefined) return
    clearInterval(episode.timer)
    this.#episode = undefined
    const duration = Math.round(episode.last - episode.since)
    const connections = episode.connections ? '; new connections waited in its accept queue' : ''
    this.#log?.warn({ shed: episode.shed, duration, connections: episode.connections }, `no longer overloaded${why}: ${episode.shed} request(s) got 503 over ${duration} ms${connections}`)
  }

  #setExempt (paths: readonly string[]): void {
    const prefixed = paths.filter(p => p.endsWith('/*'))
    this.#exact = new Set([...paths.filter(p => !p.endsWith('/*')), ...prefixed.map(p => p.slice(0, -2))])
    this.#prefixes = prefixed.map(p => p.slice(0, -1))
  }

  /** Health, readiness, control and metrics paths are served whatever the load. */
  #isExempt (url: string | undefined): boolean {
    if (url === undefined) return false
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (this.#exact.has(path)) return true
    for (const prefix of this.#prefixes) {
      if (path.startsWith(prefix)) return true
    }
    return false
  }

  /** The listener stopped: nothing waits any more (its drain answered or cut those), and no timer stays. */
  close (): void {
    this.release()
    // Stopped while overloaded: the log's episode ends with it, as it began (one line each).
    this.#endEpisode(' (the listener stopped)')
    this.#server = undefined
    // The loop, one per process, keeps no stopped listener's gate (nor its logger) alive.
    loop.forget(this)
  }
}

/** Read parked connections again from the oldest: while there is room, and every one whose time has come. */
function readAgain (parked: Map<Socket, number>, now: number, room: { left: number, late: number }): void {
  for (const [socket, deadline] of parked) {
    if (room.left <= 0) {
      if (deadline > now || room.late <= 0) return
      room.late--
    }
    parked.delete(socket)
    if (socket.destroyed) continue
    socket.resume()
    room.left--
  }
}

/** A tenth of the delay target per turn: the turns stay short enough that the other listeners' requests and new connections (one accepted per turn) wait a few milliseconds. */
function budgetOf (settings: OverloadSettings): number {
  return Math.max(1, settings.target / 10)
}

/** A quarter of the target: what a turn may take while nobody waits behind it, and the wait that keeps a listener from being calm. */
function quarterOf (settings: OverloadSettings): number {
  return settings.target / 4
}

/** The client left while its request waited: nothing to run or answer. */
function gone ({ req, res }: Held): boolean {
  if (req.destroyed) return true
  const stream = (res as { stream?: { destroyed: boolean } }).stream
  return stream !== undefined ? stream.destroyed : (res as ServerResponse).destroyed
}
