// Public types shared by the pool, its listeners and the plugin. This file is
// near the bottom of the import graph: it imports types from schema.ts,
// brand.ts and other packages only.
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify'
import type { LoggerOptions } from 'pino'
import type { Registry } from 'prom-client'
import type { Static } from '@sinclair/typebox'
import type { ListenerConfigSchema, LogLevel, PoolDefaultsSchema, TlsFileConfig } from './schema.ts'
import type { Owner } from '../base/brand.ts'

/**
 * A Fastify plugin that adds routes to a listener: `async (app, opts) => {}` or
 * `(app, opts, done) => {}`. One call signature (not a union of Fastify's two
 * plugin types) so that `app` is typed in inline handlers.
 */
export type Handler = (instance: FastifyInstance, options: Record<string, never>, done: (err?: Error) => void) => void | Promise<unknown>

/** One plugin for every listener, or a map from handler key to plugin. */
export type Handlers = Handler | Record<string, Handler>

/**
 * Builds a listener's Fastify instance. It must pass `options` to `fastify()`
 * (they carry the listener's server, logger and limits) and may add its own
 * options and shared plugins.
 */
export type Factory = (config: NormalizedConfig, options: FastifyServerOptions) => FastifyInstance | Promise<FastifyInstance>

export type ListenerState = 'stopped' | 'starting' | 'running' | 'draining' | 'failed'

/** What the lifecycle's events name a listener by (state.ts); subscribers receive the Listener itself. */
export interface ListenerRef { readonly name: string, readonly bind: string }

/** The fields a pool can select and list listeners by. */
export type Field = 'name' | 'bind' | 'expose'

export interface StopOptions {
  /** Drain deadline in milliseconds (default: the pool's stopTimeout, 10 s). */
  timeout?: number
  /**
   * pool.stop() only: milliseconds during which every readiness route
   * answers 503 while requests are still served, so that load balancers
   * stop sending first; then the drain. Counts within `timeout`. Default:
   * `defaults.shutdownDelay`, else 0.
   */
  delay?: number
  /**
   * Another process serves the same port (a cluster's rolling reload): a
   * request that arrives on an open connection while the drain runs is
   * served, with `Connection: close`, instead of refused with 503, so that
   * the client's next connection goes to the other process. Default false.
   */
  handOff?: boolean
}

/** What a listener's stop did. */
export interface StopReport {
  name: string
  bind: string
  /** Milliseconds from stop() to the last connection closed. */
  duration: number
  /** Requests still in flight at the deadline, whose connections were destroyed, and upgraded connections (WebSockets) still open then, destroyed too. */
  cut: number
  /** Of `cut`, the upgraded connections. */
  upgradedCut: number
}

/** What retiring one old generation after a restart did. */
export interface RetireReport {
  /** The number of the generation that was retired. */
  generation: number
  /** Milliseconds from the swap until its Fastify instance was closed. */
  duration: number
  /**
   * Requests it still owed at the deadline, whose connections were destroyed
   * (or HTTP/2 streams reset), and upgraded connections still open after
   * its goodbye's grace, destroyed too.
   */
  cut: number
  /** Of `cut`, the upgraded connections. */
  upgradedCut: number
}

/** What a listener's restart() (or reconfigure()) did; it resolves once the new generation serves. */
/** A canary (docs/canary.md): the new generation serves a share of the requests beside the serving one until the judge decides. */
export interface CanaryOptions {
  /** Percent of the requests the canary serves at first, 1 to 99. Default 10. */
  share?: number
  /** Further shares, each for a window once the one before passed, e.g. [50]. Default none: promoted after the first window. */
  steps?: number[]
  /** Milliseconds each step is judged before the next (or the promotion). Default 20,000. */
  window?: number
  /** Responses of a generation before it is judged. Default 20. */
  minRequests?: number
  /** How much higher the canary's 5xx share may be than the serving generation's, 0 to 1. Default 0.05. */
  maxErrorRate?: number
  /** The canary's p99 may be at most this many times the serving generation's (and at least `latencyFloor` ms more). Default 3. */
  maxLatencyRatio?: number
  /** Milliseconds of p99 the canary may always add. Default 10. */
  latencyFloor?: number
  /** Keep each client on one generation by this header or cookie (hashed); without it, by request. */
  sticky?: { header: string } | { cookie: string }
  /**
   * A window in which neither generation had `minRequests` answers: promote
   * (default: nothing was at risk, as a plain restart) or abort (nothing was
   * judged; the command's workers use it, where the judging worker may see
   * none of a busy pool's requests).
   */
  whenIdle?: 'promote' | 'abort'
}

/** What restart() and reconfigure() take: stop options, and a canary. */
export interface RestartOptions extends StopOptions {
  /** Serve the new generation beside the serving one and judge it: a share in percent, true for the defaults, or options. */
  canary?: CanaryOptions | number | true
}

/** One generation's answers since the canary began. */
export interface CanaryFigures {
  generation: number
  requests: number
  errors: number
  /** Share of 5xx, 0 to 1; null without requests. */
  errorRate: number | null
  /** Milliseconds; null without requests. */
  p99: number | null
}

/** What a canary ended with. */
export type CanaryReport = ({
  result: 'promoted'
  /** Promoted without a verdict: neither generation had `minRequests` answers in its window (an idle listener: nothing was at risk). */
  idle?: true
} | { result: 'rolled-back', criterion: 'errors' | 'latency', reason: string } | { result: 'aborted', reason: string }) & {
  /** Milliseconds from its start to the verdict. */
  duration: number
  /** The share it served last, in percent. */
  share: number
  canary: CanaryFigures
  serving: CanaryFigures
}

/** A canary running now (listener status). */
export interface CanaryStatus {
  share: number
  step: number
  steps: number
  /** Milliseconds since it began. */
  since: number
  /** Milliseconds until the promotion if every step passes. */
  left: number
  canary: CanaryFigures
  serving: CanaryFigures
}

export interface RestartReport {
  name: string
  bind: string
  /** The generation serving now. */
  generation: number
  /**
   * Resolves once the old generation has answered what it owed (or the
   * deadline cut it) and its Fastify instance is closed; undefined when the
   * restart started a stopped listener instead. Never rejects.
   */
  retired: Promise<RetireReport | undefined>
  /** With `canary`: what it ended with (the generation serving is then the winner's). */
  canary?: CanaryReport
}

/** A listener's load shedding, as configured (config.ts resolves the defaults). */
export interface OverloadSettings {
  /** Milliseconds a request should wait at most (queueing delay): the listener takes a tenth of it of loop time per turn (a quarter while no other listener is served), and beyond it its queue is served newest first. */
  readonly target: number
  /** Milliseconds a request may wait before it is answered 503. */
  readonly maxWait: number
  /** Seconds, the Retry-After of a 503. */
  readonly retryAfter: number
  /** Paths never held nor shed: `/x` exactly, `/x/*` and everything under it. */
  readonly exempt: readonly string[]
}

/** What a listener's load shedding reports (status, GET /pool, metrics). */
export interface OverloadStatus {
  /** True from the first 503 until a second passed without one (nor a standing accept queue, see connectionsWait). */
  shedding: boolean
  /**
   * True while new connections wait in the kernel's accept queue: in the
   * last second, a connection the listener made to itself waited there the
   * target (libuv accepts one a turn). Their wait comes before the listener
   * reads a request: it is not in `delay`, and no request of theirs is
   * refused. Measured on plain HTTP/1 TCP sockets this process bound only.
   */
  connectionsWait: boolean
  /** Milliseconds the last connection of its own waited in its accept queue (so far, if not yet accepted), measured in the last second; 0 otherwise. */
  acceptWait: number
  /** Requests answered 503 since the listener was made. */
  shed: number
  /** Requests waiting now. */
  waiting: number
  /** Refused HTTP/1 connections left unread for Retry-After (or until the queue had room) since the listener was made: while it refused more than twice what it admitted. */
  parked: number
  /** The queueing-delay target, in milliseconds (the setting). */
  target: number
  /** Milliseconds the requests served from the queue waited, recently (0 when none waited in the last second). */
  delay: number
  /** Requests a turn admits at the measured cost of one, or undefined before one was measured. */
  limit: number | undefined
  /** The length of the listener's accept queue: 511, and 16 while its queue of requests stands; undefined on a socket the pool does not set (passed by systemd, handed over by an upgrade, shared by workers). */
  acceptQueue: number | undefined
}

/** A snapshot of a listener's state. */
export interface ListenerStatus {
  name: string
  bind: string
  expose: string | undefined
  url: string | undefined
  handler: string
  state: ListenerState
  running: boolean
  disabled: boolean
  optional: boolean
  /** Milliseconds since it started listening; 0 when not running. */
  uptime: number
  /** Number of the Fastify instance serving now; each restart adds one. */
  generation: number
  /** Requests in flight. */
  inflight: number
  /** Upgraded connections (WebSockets, CONNECT tunnels) open, of every generation. */
  upgraded: number
  /** Older generations still finishing their requests or keeping their upgraded connections after a swap, oldest first. */
  retiring: RetiringStatus[]
  lastError: string | undefined
  lastStop: StopReport | undefined
  /** The TLS certificate served (TLS listeners, once started): subject, expiry, days left. */
  certificate: { subject: string, notAfter: string, daysLeft: number } | undefined
  /** Load shedding (overload.ts), while it is on. */
  overload?: OverloadStatus | undefined
  /** A canary running now (canary.ts). */
  canary?: CanaryStatus | undefined
  /** With metrics on: responses per second, 5xx share and p50/p99 latency over about the last 10 s (docs/operations.md). */
  traffic?: TrafficFigures
}

/** A generation that a swap left retiring. */
export interface RetiringStatus {
  generation: number
  /** Requests it still owes. */
  inflight: number
  /** Its upgraded connections still open. */
  upgraded: number
  /** Milliseconds since it stopped receiving requests. */
  since: number
}

export interface PoolOptions {
  /** The listeners; a config that validateConfig() returned is taken as checked. */
  servers?: Array<ListenerConfig | NormalizedConfig>
  /** Settings every listener inherits (TLS, timeouts, limits, logLevel, health, stopTimeout). */
  defaults?: PoolDefaults
  /** One plugin for every listener, or handler key -> plugin. */
  handlers?: Handlers
  /** Builds each listener's Fastify instance (default: `fastify(options)`). */
  factory?: Factory
  /** A pino logger, pino options, or true for a default one. Default: no logging. */
  logger?: boolean | FastifyBaseLogger | LoggerOptions
  /** Folder relative TLS and unix socket paths are resolved against (default: the working directory). */
  baseDir?: string
  /**
   * Prometheus metrics (off by default): true serves them on the listener
   * named `admin` at `/metrics`; or say where, and give a prom-client
   * Registry of your own. See docs/metrics.md.
   */
  metrics?: boolean | MetricsOptions
  /**
   * The control API (off by default): `GET /pool`, `POST /pool/restart`,
   * `/stop`, `/start` (`?name=GLOB` or `?bind=GLOB`) and `/reload` on one
   * listener. A token is required unless it is on loopback or a unix socket.
   * See docs/operations.md.
   */
  control?: ControlOptions
  /**
   * Where the listeners' listening sockets come from when this process was
   * given them instead of binding them (socket activation, a predecessor's
   * hand-off, the primary of a cluster): see {@link SocketSource}. Default:
   * every listener binds its own address, and `fd:N` listens on descriptor N.
   */
  sockets?: SocketSource
  /**
   * Lifecycle hooks, by name (one function or an array): see
   * `pool.addHook()` and docs/hooks.md.
   */
  hooks?: HooksOption
}

/**
 * The seam between a pool and the process that runs it: the listening
 * sockets a process was given (by systemd, by the process it replaces, by
 * its cluster's primary). The pool asks it on each start of a listener; it
 * knows nothing of where they came from. fastify-pool-cli provides the
 * sources of the command (docs/pool.md, "Sockets from elsewhere").
 */
export interface SocketSource {
  /**
   * The socket for this address, taken by the listener that starts on it:
   * the descriptor of a listening (or bound) socket, or a listening handle
   * as net.Server.listen() takes it (`fastify-pool/sockets`' handleFor()
   * makes one from a descriptor: listen({ fd }) in a node:cluster worker
   * would ask the primary instead). Undefined: the listener binds the
   * address itself (`fd:N`: listens on descriptor N). Throw to refuse the
   * start: the error is the listener's failure.
   */
  take: (address: ListenAddress, bind: string) => number | object | undefined
  /**
   * Why a `systemd:NAME` or `fd:N` address cannot be served from this
   * source, if it cannot; checked by createPool() before anything is built
   * (FST_POOL_VALIDATE). Without it a `systemd:NAME` address is refused.
   */
  problem?: (address: ListenAddress, bind: string) => string | undefined
}

/** The pool's `control` option. */
export interface ControlOptions {
  /** The listener that serves the control API (default `admin`). */
  listener?: string
  /** The bearer token (16 characters at least); required unless that listener is on loopback or a unix socket. */
  token?: string
  /** Where the routes are (default `/pool`: `GET /pool`, `POST /pool/restart`...). */
  path?: string
  /** What `POST <path>/reload` runs (the command re-reads its file), with `?canary=PERCENT` as `how.canary`; without it that route answers 501. */
  reload?: (how: { canary?: number }) => Promise<unknown>
  /**
   * What `POST <path>/upgrade` runs (the command starts a successor process
   * and hands it the sockets); it resolves with the answer's fields once the
   * successor is ready, rejects with why not. Without it the route answers 501.
   */
  upgrade?: (options: { timeout?: number, node?: string }) => Promise<Record<string, unknown>>
  /** Fields `GET <path>` adds to its answer (the command's workers add every worker's listeners). */
  status?: () => Promise<Record<string, unknown>>
  /**
   * What `POST <path>/restart|stop|start` runs instead of acting on this
   * pool's listeners (the command's workers: the primary has every worker
   * act, and answers with one aggregate). `query` is the request's (`name`
   * or `bind`, `force`); it resolves with the status code and the body.
   * `fastify-pool/control`'s controlAction() is the action on one pool.
   */
  act?: (action: 'restart' | 'stop' | 'start' | 'canary promote' | 'canary abort', query: Record<string, unknown>) => Promise<{ statusCode: number, body: object }>
}

/** The pool's `metrics` option, as an object. */
export interface MetricsOptions {
  /** The listener that serves the exposition (default `admin`). */
  listener?: string
  /** Its path (default `/metrics`). */
  path?: string
  /** The prom-client registry to register in (default: one of the pool's own). */
  registry?: Registry
  /** Include prom-client's process metrics, collected once per process (default true). */
  defaultMetrics?: boolean
  /** What the metrics route serves instead of the pool's own exposition (the command's workers serve the cluster's sum). */
  exposition?: () => Promise<string>
}

// --- Configuration -----------------------------------------------------------

/** A listen address, parsed. */
export type ListenAddress =
  | { kind: 'tcp', host: string | undefined, port: number }
  | { kind: 'unix', path: string }
  /** A listening socket this process was given: `fd:N`, or `systemd:NAME` (socket activation; served from PoolOptions.sockets). */
  | { kind: 'fd', fd: number }
  | { kind: 'systemd', name: string }

/** TLS settings as a user may give them in code: PEM text, a path, or a Buffer of PEM. */
export type TlsConfig = Omit<TlsFileConfig, 'cert' | 'key' | 'ca'> & {
  cert?: string | Buffer
  key?: string | Buffer
  ca?: string | Buffer | Array<string | Buffer>
}

/** Fastify server options a listener may pass through; the pool manages the rest. */
export type PassThroughOptions = Omit<FastifyServerOptions, 'serverFactory' | 'https' | 'http2' | 'logger' | 'loggerInstance' | 'bodyLimit' | 'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout'>

/** One listener's configuration. */
export type ListenerConfig = Omit<Static<typeof ListenerConfigSchema>, 'tls' | 'fastify'> & {
  tls?: TlsConfig | false
  fastify?: PassThroughOptions
}

/** Settings every listener inherits and may override field by field. */
export type PoolDefaults = Omit<Static<typeof PoolDefaultsSchema>, 'tls'> & { tls?: TlsConfig }

/** A listener's configuration after validation: every default applied, frozen. */
export interface NormalizedConfig {
  readonly name: string
  readonly listen: string | number
  readonly address: ListenAddress
  /** Canonical bind address, the listener's key in a pool. */
  readonly bind: string
  /** Public URL as configured or derived; undefined for port 0 until the listener runs. */
  readonly expose: string | undefined
  readonly handler: string
  readonly disabled: boolean
  readonly optional: boolean
  /** TLS settings as given (paths kept, so a restart re-reads renewed files). */
  readonly tls: TlsConfig | undefined
  readonly http2: boolean
  /** pool.stop() drains groups of listeners by this number, lowest first. */
  readonly stopOrder: number
  readonly connectionTimeout: number
  readonly keepAliveTimeout: number
  readonly requestTimeout: number
  readonly headersTimeout: number
  /** Milliseconds a response may make no progress towards a client that stopped reading; 0 disables. */
  readonly sendTimeout: number
  /** Milliseconds a retiring generation keeps its upgraded connections (WebSockets) before it says goodbye. */
  readonly upgradeDrainTimeout: number
  /** Milliseconds over which the goodbyes to upgraded connections are spread (one per millisecond at most). */
  readonly upgradeCloseWindow: number
  readonly bodyLimit: number
  readonly logLevel: LogLevel | undefined
  readonly health: Readonly<{ liveness: string | false, readiness: string | false }>
  /** Load shedding (overload.ts), or false. */
  readonly overload: OverloadSettings | false
  readonly fastify: PassThroughOptions
  /** Folder relative paths (TLS files, unix sockets) are resolved against. */
  readonly baseDir: string
  /** The configuration exactly as given, for clone(). */
  readonly source: ListenerConfig
}

// --- lifecycle events and hooks ------------------------------------------

/**
 * What every listener event carries. The listener is a type parameter: this
 * file sits below listener.ts, and the public types (index.ts) fill in Listener.
 */
export interface ListenerEvent<L extends ListenerRef = ListenerRef> {
  listener: L
  name: string
  bind: string
  /** The generation serving when a state changed (0 when none does), the one now serving after a swap, the one whose requests were cut. */
  generation: number
}

/** What `fastify-pool:listener:state` publishes. */
export interface StateChange<L extends ListenerRef = ListenerRef> extends ListenerEvent<L> {
  /** The pool that made the listener (createPool() or clone()); undefined for a listener made otherwise. */
  pool: object | undefined
  from: ListenerState
  to: ListenerState
  /** Why it failed, on a change to `failed`. */
  error?: Error
}

export interface GenerationEvent<L extends ListenerRef = ListenerRef> extends ListenerEvent<L> {
  /** The one swapped out, retiring. */
  previous: number
}

export interface CutEvent<L extends ListenerRef = ListenerRef> extends ListenerEvent<L> {
  /** How many: requests, and upgraded connections (WebSockets). */
  cut: number
  /** Of `cut`, the upgraded connections. */
  upgraded: number
  /** `stop` (the listener's drain) or `restart` (a retiring generation). */
  during: 'stop' | 'restart'
}

/** What the building hooks learn of the instance being built. */
export interface BuildInfo<L extends ListenerRef = ListenerRef, P = object> {
  /** The pool that made the listener (undefined for a listener made otherwise). */
  pool: P | undefined
  listener: L
  name: string
  bind: string
  /** The generation's number; 0 for the in-memory instance that inject() uses while the listener does not run. */
  generation: number
  http2: boolean
  /** True when the pool's `factory` makes the instance: it may not use the options it is given. */
  factory: boolean
  /**
   * Paths that the listener's load shedding must never hold (what the hook
   * adds that must answer under a flood): `/x`, or `/x/*` for everything
   * under it. Takes effect for this generation.
   */
  exempt: (...paths: string[]) => void
}

/** What the `onCanary` hook gets. */
export interface CanaryEvent<L extends ListenerRef = ListenerRef> {
  listener: L
  name: string
  bind: string
  /** The canary's generation, and the one serving beside it. */
  generation: number
  serving: number
  share: number
  /** Set once it ended. */
  report?: CanaryReport
}

/** What a generation left when it was closed: swapped out by a restart, or the last one at a stop. */
export interface RetireEvent<L extends ListenerRef = ListenerRef> {
  listener: L
  name: string
  bind: string
  generation: number
  during: 'restart' | 'stop'
  /** Milliseconds from the swap (or the drain's start) until it was closed. */
  duration: number
  /** Requests and upgraded connections cut at the deadline. */
  cut: number
  upgradedCut: number
}

/** The hooks, by name. Each may be given as one function or an array. */
export interface PoolHooks<L extends ListenerRef = ListenerRef, P = object> {
  /** Before a generation's instance is made: return options to make it with instead (a `factory` may not use them; see `info.factory`). */
  onOptions: (options: FastifyServerOptions, info: BuildInfo<L, P>) => FastifyServerOptions | undefined | void
  /** A generation's instance is made, before its health routes and handler plugin and before it is ready: add hooks and routes. */
  onBuild: (app: FastifyInstance, info: BuildInfo<L, P>) => void
  /** A new generation serves the listener's socket (restart, reconfigure, a reload's change). */
  onSwap: (event: GenerationEvent<L>) => void
  /** A generation is closed: swapped out and done with what it owed, or the last one at a stop. */
  onRetire: (event: RetireEvent<L>) => void
  /** A drain or a retiring generation reached its deadline and cut requests. */
  onCut: (event: CutEvent<L>) => void
  /** A listener changed state. */
  onStateChange: (event: StateChange<L>) => void
  /** A reload was applied, or refused (then `error`). */
  onReload: (event: ReloadEvent) => void
  /** A canary began (`report` undefined) or ended (with its report). */
  onCanary: (event: CanaryEvent<L>) => void
}

export type HookName = keyof PoolHooks
/** The hooks that are told what happened (the others take part in a build). */
export type TellHookName = Exclude<HookName, 'onOptions' | 'onBuild'>
export type HooksOption<L extends ListenerRef = ListenerRef, P = object> = { [K in HookName]?: PoolHooks<L, P>[K] | Array<PoolHooks<L, P>[K]> }

/** How a listener runs its pool's hooks (listener/hooks.ts). */
export interface HookRunner {
  add: (name: HookName, fn: Function) => void
  addAll: (option: Partial<Record<HookName, Function | Function[]>> | undefined) => void
  /** A copy, for a clone. */
  copy: () => HookRunner
  has: (name: HookName) => boolean
  options: (options: FastifyServerOptions, info: BuildInfo) => FastifyServerOptions
  build: (app: FastifyInstance, info: BuildInfo) => void
  tell: <K extends TellHookName>(name: K, event: Parameters<PoolHooks[K]>[0], log: FastifyBaseLogger | undefined) => void
}

/** What a listener takes from the pool that made it. */
export interface ListenerContext {
  handlers: Handlers | undefined
  factory: Factory | undefined
  logger: FastifyBaseLogger | undefined
  stopTimeout: number
  /** The pool's lifecycle hooks (hooks.ts): shared by its selections, copied by a clone. */
  hooks: HookRunner
  /** The pool that made the listener (createPool() or clone()), for the events it publishes. */
  owner?: Owner
  /** Where listening sockets come from (PoolOptions.sockets around the default: each listener binds its address; listener/sockets.ts). */
  sockets: {
    take: (address: ListenAddress) => number | object | undefined
    problem: (address: ListenAddress) => string | undefined
  }
}

/** One listener's traffic over `window` seconds. */
export interface TrafficFigures {
  /** Seconds the figures cover (the window, or less just after the start). */
  window: number
  /** Responses completed in the window. */
  requests: number
  /** Responses per second. */
  rate: number
  /** Share of those responses with a 5xx status, 0 to 1; null without responses. */
  errorRate: number | null
  /** Median and 99th percentile of the response time, in milliseconds, estimated from the histogram's buckets; null without responses. */
  p50: number | null
  p99: number | null
}

/** What `fastify-pool:pool:reload` publishes: the report once applied, or the error. */
export interface ReloadEvent {
  /** The pool reloaded. */
  pool: object
  report?: ReloadReport
  /** Once applied: the defaults now in force, and the drain deadline they give. */
  defaults?: PoolDefaults
  stopTimeout?: number
  error?: unknown
}

/** What a reload did, by listener name. */
export interface ReloadReport {
  /** New listeners, started. */
  added: string[]
  /** Listeners no longer configured, drained and stopped. */
  removed: string[]
  /** Same address, new settings or handler: reconfigured on their socket. */
  changed: string[]
  /** New address: started there, then the old one drained. */
  moved: string[]
  /** Left alone (certificate files are re-read, so a renewed certificate is served). */
  unchanged: string[]
  /** With a canary: each changed listener's verdict, by name (one not promoted serves its previous configuration). */
  canary?: Record<string, CanaryReport>
}
