// Prometheus metrics of a pool, with prom-client: per-listener request
// durations recorded by an onResponse hook on every generation, gauges read
// from the listeners when scraped, counters moved by the lifecycle events
// (state.ts, pool.ts), and prom-client's process metrics collected once per
// process. One set of metrics per registry, whatever the number of pools,
// restarts and reloads that use it: nothing is ever registered twice.
import cluster from 'node:cluster'
import { subscribe } from 'node:diagnostics_channel'
import { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import { createRequire } from 'node:module'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type * as PromClient from 'prom-client'
import type { Counter, Gauge, Registry } from 'prom-client'
import { RouteHistogram, type Series } from './histogram.ts'
import { isPool } from './brand.ts'
import { quote, type ValidationIssue } from './errors.ts'
import { Type } from '@sinclair/typebox'
import { MetricsObjectSchema, MetricsOptionSchema, optionIssues, withDefaults } from './options.ts'
import type { Listener } from './listener.ts'
import type { MetricsOptions, MetricsSink } from './types.ts'
import type { ReloadEvent } from './reload.ts'
import { CUT_CHANNEL, GENERATION_CHANNEL, type CutEvent, type GenerationEvent } from './state.ts'

/** The metrics option with its defaults. */
export interface MetricsSettings { listener: string, path: string, registry: Registry | undefined, defaultMetrics: boolean, exposition: (() => Promise<string>) | undefined }

/** The `route` label of a request that matched no route (route labels are URL patterns, which start with "/"). */
export const UNMATCHED_ROUTE = 'unmatched'

/** Buckets, in seconds, of http_request_duration_seconds. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

/**
 * The metrics option with its defaults, checked against the listeners'
 * names (the schema checked its shape); undefined when metrics are off.
 */
export function metricsSettings (option: boolean | MetricsOptions | undefined, names: readonly string[], issues: ValidationIssue[]): MetricsSettings | undefined {
  if (option === undefined || option === false || (typeof option !== 'object' && option !== true)) return undefined
  const given = option === true ? {} : option
  const settings = withDefaults(MetricsObjectSchema, given) as MetricsSettings
  if (!names.includes(settings.listener)) {
    const known = names.length === 0 ? 'there are no listeners' : `listeners: ${names.join(', ')}`
    issues.push(given.listener === undefined
      ? { path: 'metrics', message: `serves on the listener named "admin" by default, and there is none (${known}); name one with metrics.listener` }
      : { path: 'metrics.listener', message: `names no listener (got ${quote(given.listener)}; ${known})` })
  }
  const registry = given.registry as Partial<Registry> | undefined
  if (registry !== undefined && (typeof registry.metrics !== 'function' || typeof registry.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function')) {
    issues.push({ path: 'metrics.registry', message: 'must be a prom-client Registry (new Registry() of prom-client 15)' })
  }
  return settings
}

/** Every problem of a metrics option, its shape and the listener it names, given the listeners' names. */
export function metricsIssues (option: unknown, names: readonly string[]): ValidationIssue[] {
  const issues = optionIssues(Type.Object({ metrics: Type.Optional(MetricsOptionSchema) }), { metrics: option }, '')
  if (issues.length === 0) metricsSettings(option as boolean | MetricsOptions | undefined, names, issues)
  return issues
}

let prom: typeof PromClient | undefined
/** prom-client, loaded the first time a pool has metrics. */
function promClient (): typeof PromClient {
  return (prom ??= createRequire(import.meta.url)('prom-client') as typeof PromClient)
}

// Process metrics: one registry per process, shared by every copy of this
// package (two copies would otherwise collect them twice).
const PROCESS_KEY = Symbol.for('fastify-pool.processMetrics')
function processRegistry (): Registry {
  const holder = globalThis as { [PROCESS_KEY]?: Registry }
  let registry = holder[PROCESS_KEY]
  if (registry === undefined) {
    const client = promClient()
    registry = new client.Registry()
    client.collectDefaultMetrics({ register: registry })
    holder[PROCESS_KEY] = registry
  }
  return registry
}

interface Family {
  duration: RouteHistogram
  restarts: Counter<'listener'>
  cut: Counter<'listener'>
  reloads: Counter<'result'>
  /** The sinks whose listeners the gauges read at each scrape. */
  sinks: Set<WeakRef<PoolMetrics>>
}

/** One family of metrics per registry. */
const families = new WeakMap<Registry, Family>()

function family (registry: Registry): Family {
  const known = families.get(registry)
  if (known !== undefined) return known
  const client = promClient()
  const registers = [registry]
  const sinks = new Set<WeakRef<PoolMetrics>>()
  // Gauges are read from the listeners when scraped: nothing to keep up to date per request.
  const gauge = (name: string, help: string, read: (l: Listener) => number | undefined, merge: (a: number, b: number) => number, aggregator: 'sum' | 'min' | 'max'): void => {
    const g: Gauge<'listener'> = new client.Gauge({
      name,
      help,
      labelNames: ['listener'],
      registers,
      // How the cluster's primary adds up the workers' values.
      aggregator,
      collect () {
        g.reset()
        const values = new Map<string, number>()
        for (const l of listenersOf(sinks)) {
          const v = read(l)
          if (v === undefined) continue
          const before = values.get(l.name)
          values.set(l.name, before === undefined ? v : merge(before, v))
        }
        for (const [listener, v] of values) g.set({ listener }, v)
      }
    })
  }
  gauge('fastify_pool_requests_in_flight', 'Requests received and not yet answered in full, per listener', l => l.inflight, (a, b) => a + b, 'sum')
  gauge('fastify_pool_listener_up', '1 while the listener is running, else 0', l => l.isRunning ? 1 : 0, Math.max, 'min')
  gauge('fastify_pool_listener_generation', 'The generation (Fastify instance) serving the listener; 0 when stopped', l => l.status.generation, Math.max, 'max')
  gauge('fastify_pool_tls_certificate_expiry_timestamp_seconds', 'When the certificate a TLS listener serves expires, in seconds since the epoch', l => {
    const notAfter = l.status.certificate?.notAfter
    return notAfter === undefined ? undefined : Date.parse(notAfter) / 1000
  }, Math.min, 'min')
  const made: Family = {
    duration: new RouteHistogram('http_request_duration_seconds', 'Time from the request to its response, per listener, method, route pattern and status code', DURATION_BUCKETS),
    restarts: new client.Counter({ name: 'fastify_pool_restarts_total', help: 'Generations swapped in on a live socket (restart, reconfigure, reload)', labelNames: ['listener'], registers }),
    cut: new client.Counter({ name: 'fastify_pool_drain_cut_requests_total', help: 'Requests cut because a drain or a restart reached its deadline', labelNames: ['listener'], registers }),
    reloads: new client.Counter({ name: 'fastify_pool_reloads_total', help: 'Configuration reloads, by result', labelNames: ['result'], registers }),
    sinks
  }
  registry.registerMetric(made.duration as unknown as PromClient.Metric)
  for (const result of ['ok', 'failed']) made.reloads.inc({ result }, 0)
  families.set(registry, made)
  return made
}

function * listenersOf (sinks: Set<WeakRef<PoolMetrics>>): Generator<Listener> {
  const seen = new Set<Listener>()
  for (const ref of sinks) {
    const sink = ref.deref()
    if (sink === undefined) { sinks.delete(ref); continue }
    for (const l of sink.listeners()) {
      if (!seen.has(l)) { seen.add(l); yield l }
    }
  }
}

/** The metrics of one pool (and of its clones and selections, which share its listeners' context). */
export class PoolMetrics implements MetricsSink {
  readonly settings: MetricsSettings
  readonly registry: Registry
  #family: Family
  #pools = new Set<WeakRef<object & Iterable<Listener>>>()
  /** The histogram's series of each listener. */
  #observers = new Map<string, SeriesOf>()

  constructor (settings: MetricsSettings) {
    this.settings = settings
    this.registry = settings.registry ?? new (promClient().Registry)()
    this.#family = family(this.registry)
    this.#family.sinks.add(new WeakRef(this))
    if (settings.defaultMetrics) processRegistry()
    listenToEvents()
    // In a cluster worker, what the primary's AggregatorRegistry collects
    // (making one installs the worker's answer to the primary's requests).
    if (cluster.isWorker) {
      const { AggregatorRegistry } = promClient()
      aggregator ??= new AggregatorRegistry()
      AggregatorRegistry.setRegistries(settings.defaultMetrics ? [this.registry, processRegistry()] : [this.registry])
    }
  }

  /** Count the listeners of `pool` in the gauges (the pool, its clones and selections). */
  attach (pool: object & Iterable<Listener>): void {
    this.#pools.add(new WeakRef(pool))
    poolSinks.set(pool, this)
  }

  * listeners (): Generator<Listener> {
    for (const ref of this.#pools) {
      const pool = ref.deref()
      if (pool === undefined) this.#pools.delete(ref)
      else yield * pool
    }
  }

  /**
   * Instrument one generation of a listener: each route gets an onResponse
   * hook of its own that knows its pattern (reading request.routeOptions
   * would build an object per request); requests no route matched are
   * counted by one hook on the instance. The metrics listener also gets the
   * exposition route.
   */
  instrument (app: FastifyInstance, listener: string, _owner?: unknown, recorded = false, http2 = false): void {
    const series = this.#seriesOf(listener)
    if (!recorded) {
      if (http2) this.#addHooks(app, series)
      else markRequests(app, series)
    }
    if (listener !== this.settings.listener) return
    const custom = this.settings.exposition
    app.get(this.settings.path, { logLevel: 'warn' }, async (_request, reply) => {
      reply.header('content-type', this.registry.contentType).header('cache-control', 'no-store')
      return custom === undefined ? this.exposition() : custom()
    })
  }

  /**
   * Fastify options whose log controller records each response as Fastify
   * logs its completion: no onResponse hook, whose runner costs more than
   * the recording. Only where Fastify calls it anyway: with a logger (without
   * one Fastify does not watch for the end of responses unless a hook asks),
   * a Fastify that has LogController (5.12 and later), an instance this
   * library makes (a factory may use another copy of Fastify, whose check
   * of the class would fail) and no log controller of the user's. Undefined
   * otherwise: the hooks record.
   */
  recordingOptions (options: FastifyServerOptions, listener: string): FastifyServerOptions | undefined {
    const Base = (Fastify as unknown as { LogController?: new (options: object) => LogControllerLike }).LogController
    if (typeof Base !== 'function' || (options as { logController?: unknown }).logController !== undefined) return undefined
    if ((options as { loggerInstance?: unknown }).loggerInstance === undefined) return undefined
    const series = this.#seriesOf(listener)
    const histogram = series.histogram as RouteHistogram
    const byRoute = new Map<string, Map<string, Map<number, Series>>>()
    class RecordingController extends Base {
      override requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void {
        const route = request.is404 ? UNMATCHED_ROUTE : request.routeOptions.url ?? UNMATCHED_ROUTE
        const method = request.method
        const status = reply.statusCode
        let byMethod = byRoute.get(route)
        if (byMethod === undefined) { byMethod = new Map(); byRoute.set(route, byMethod) }
        let byStatus = byMethod.get(method)
        if (byStatus === undefined) { byStatus = new Map(); byMethod.set(method, byStatus) }
        let one = byStatus.get(status)
        if (one === undefined) { one = series(method, route, status); byStatus.set(status, one) }
        histogram.observe(one, reply.elapsedTime / 1000)
        super.requestCompleted(error, request, reply, metadata)
      }
    }
    return { ...options, logController: new RecordingController(options) } as FastifyServerOptions
  }

  #addHooks (app: FastifyInstance, series: SeriesOf): void {
    app.addHook('onRoute', (route) => {
      const hook = routeHook(series, route.url ?? route.path)
      const own = route.onResponse
      route.onResponse = own === undefined ? [hook] : [...(Array.isArray(own) ? own : [own]), hook] as typeof route.onResponse
    })
    const unmatched = routeHook(series, UNMATCHED_ROUTE)
    app.addHook('onResponse', function countUnmatched (request, reply, done) {
      if (request.is404) unmatched.call(this, request, reply, done)
      else done()
    })
  }

  /**
   * The text exposition, as the metrics route serves it: the registry's
   * metrics, and the process metrics unless the registry has its own.
   */
  async exposition (): Promise<string> {
    const own = await this.registry.metrics()
    if (!this.settings.defaultMetrics || this.registry.getSingleMetric('process_cpu_user_seconds_total') !== undefined) return own
    return `${await processRegistry().metrics()}\n${own}`
  }

  restarted (listener: string): void { this.#family.restarts.inc({ listener }) }
  cut (listener: string, n: number): void { this.#family.cut.inc({ listener }, n) }
  reloaded (ok: boolean): void { this.#family.reloads.inc({ result: ok ? 'ok' : 'failed' }) }

  /** The series of one listener: kept per listener name, so that restarts and reloads count on. */
  #seriesOf (listener: string): SeriesOf {
    let of = this.#observers.get(listener)
    if (of !== undefined) return of
    const duration = this.#family.duration
    of = (method, route, status) => duration.series({ listener, method, route, status_code: String(status) })
    of.histogram = duration
    // Counts start at 0 for every listener, so a rate() has a first sample.
    this.#family.restarts.inc({ listener }, 0)
    this.#family.cut.inc({ listener }, 0)
    this.#observers.set(listener, of)
    return of
  }
}

interface LogControllerLike { requestCompleted (error: unknown, request: FastifyRequest, reply: FastifyReply, metadata?: unknown): void }

type SeriesOf = ((method: string, route: string, status: number) => Series) & { histogram?: RouteHistogram }

/**
 * HTTP/1 without a logger: each request is marked as soon as Fastify has
 * routed it (the instance's first onRequest hook, so a request that a later
 * hook or validation rejects is still counted under its route), and
 * recorded when Node has finished its response (the
 * `http.server.response.finish` channel). That costs about half of an
 * onResponse hook, for which Fastify adds two listeners per response.
 */
function markRequests (app: FastifyInstance, series: SeriesOf): void {
  listenToResponses()
  const histogram = series.histogram as RouteHistogram
  const recorders = new Map<string, Recorder>()
  const recorderFor = (route: string): Recorder => {
    let record = recorders.get(route)
    if (record !== undefined) return record
    const known = new Map<string, Map<number, Series>>()
    record = (method, status, seconds) => {
      let byStatus = known.get(method)
      if (byStatus === undefined) { byStatus = new Map(); known.set(method, byStatus) }
      let one = byStatus.get(status)
      if (one === undefined) { one = series(method, route, status); byStatus.set(status, one) }
      histogram.observe(one, seconds)
    }
    recorders.set(route, record)
    return record
  }
  app.addHook('onRequest', function markRoute (request, reply, done) {
    const record = recorderFor(request.is404 ? UNMATCHED_ROUTE : request.routeOptions.url ?? UNMATCHED_ROUTE)
    const raw = request.raw as MarkedRequest
    if (raw instanceof IncomingMessage) {
      raw[kRecord] = record
      raw[kStart] = performance.now()
    } else {
      // inject(): no socket, so Node publishes nothing; its response says when it is done.
      const start = performance.now()
      reply.raw.once('finish', () => { record(request.method, reply.raw.statusCode, (performance.now() - start) / 1000) })
    }
    done()
  })
}

type Recorder = (method: string, status: number, seconds: number) => void
const kRecord = Symbol('fastify-pool.metrics.record')
const kStart = Symbol('fastify-pool.metrics.start')
type MarkedRequest = FastifyRequest['raw'] & { [kRecord]?: Recorder, [kStart]?: number }

let listeningToResponses = false
/** One subscription per process: a finished response of a marked request is recorded. */
function listenToResponses (): void {
  if (listeningToResponses) return
  listeningToResponses = true
  subscribe('http.server.response.finish', (message) => {
    const { request, response } = message as { request: MarkedRequest, response: { statusCode: number } }
    const record = request[kRecord]
    if (record === undefined) return
    record(request.method ?? 'GET', response.statusCode, (performance.now() - (request[kStart] ?? 0)) / 1000)
  })
}

/** The onResponse hook of one route: its series by method and status, found once each. */
function routeHook (seriesOf: SeriesOf, route: string): (request: FastifyRequest, reply: FastifyReply, done: () => void) => void {
  const histogram = seriesOf.histogram as RouteHistogram
  const known = new Map<string, Map<number, Series>>()
  return function recordDuration (request, reply, done) {
    const method = request.method
    let byStatus = known.get(method)
    if (byStatus === undefined) { byStatus = new Map(); known.set(method, byStatus) }
    const status = reply.statusCode
    let series = byStatus.get(status)
    if (series === undefined) { series = seriesOf(method, route, status); byStatus.set(status, series) }
    histogram.observe(series, reply.elapsedTime / 1000)
    done()
  }
}

/**
 * In a cluster's primary: the metrics of every worker's pool, summed by
 * prom-client's AggregatorRegistry (counters and histograms add up; gauges
 * by their aggregator: in flight summed, up the lowest, generation the
 * highest).
 */
export async function clusterMetrics (): Promise<string> {
  aggregator ??= new (promClient().AggregatorRegistry)()
  return aggregator.clusterMetrics()
}
let aggregator: InstanceType<typeof PromClient.AggregatorRegistry> | undefined

/** The metrics of a pool, for the reload events that name the pool. */
const poolSinks = new WeakMap<object, PoolMetrics>()

let listening = false
/** The lifecycle events move the counters; one subscription per process, for every pool. */
function listenToEvents (): void {
  if (listening) return
  listening = true
  subscribe(GENERATION_CHANNEL, (message) => {
    const event = message as GenerationEvent
    event.listener.context.metrics?.restarted(event.name)
  })
  subscribe(CUT_CHANNEL, (message) => {
    const event = message as CutEvent
    event.listener.context.metrics?.cut(event.name, event.cut)
  })
  subscribe('fastify-pool:pool:reload', (message) => {
    const event = message as ReloadEvent
    if (isPool(event.pool)) poolSinks.get(event.pool)?.reloaded(event.error === undefined)
  })
}
