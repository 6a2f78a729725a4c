// Prometheus metrics of a pool, with prom-client: per-listener request
// durations recorded by an onResponse hook on every generation, gauges read
// from the listeners when scraped, counters moved by the lifecycle events
// (state.ts, pool.ts), and prom-client's process metrics collected once per
// process. One set of metrics per registry, whatever the number of pools,
// restarts and reloads that use it: nothing is ever registered twice.
import cluster from 'node:cluster'
import { subscribe } from 'node:diagnostics_channel'
import { createRequire } from 'node:module'
import type { FastifyInstance } from 'fastify'
import type * as PromClient from 'prom-client'
import type { Counter, Gauge, Registry } from 'prom-client'
import { RouteHistogram } from './histogram.ts'
import { ListenerRecorder, recordingOptions, recordWithHooks } from './recording.ts'
import { TrafficWindow } from './traffic.ts'
import { quote, type ValidationIssue } from '../base/errors.ts'
import { Type } from '@sinclair/typebox'
import { MetricsObjectSchema, MetricsOptionSchema, optionIssues, withDefaults } from '../config/options.ts'
import type { Listener } from '../listener/listener.ts'
import type { MetricsOptions, OverloadStatus, TrafficFigures } from '../config/types.ts'
import type { BuildInfo, HookName, PoolHooks } from '../config/types.ts'
import { isPool } from '../base/brand.ts'
import { CHANNELS, type UpgradeEvent } from '../listener/state.ts'

/** The metrics option with its defaults. */
export interface MetricsSettings { listener: string, path: string, registry: Registry | undefined, defaultMetrics: boolean, exposition: (() => Promise<string>) | undefined }

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
  canaries: Counter<'listener' | 'result'>
  upgrades: Counter<'result'>
  /** What `upgrades` counted so far (an event carries the totals of the line of processes). */
  upgraded: { ok: number, failed: number }
  /** The sinks whose listeners the gauges read at each scrape. */
  sinks: Set<WeakRef<PoolMetrics>>
}

/** One family of metrics per registry. */
const families = new WeakMap<Registry, Family>()
/** Every family, for the events that are not a pool's (upgrades). */
const everyFamily = new Set<WeakRef<Family>>()

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
  gauge('fastify_pool_upgraded_connections', 'Upgraded connections (WebSockets) open, of every generation, per listener', l => l.upgraded, (a, b) => a + b, 'sum')
  gauge('fastify_pool_listener_up', '1 while the listener is running, else 0', l => l.isRunning ? 1 : 0, Math.max, 'min')
  gauge('fastify_pool_listener_generation', 'The generation (Fastify instance) serving the listener; 0 when stopped', l => l.status.generation, Math.max, 'max')
  gauge('fastify_pool_tls_certificate_expiry_timestamp_seconds', 'When the certificate a TLS listener serves expires, in seconds since the epoch', l => {
    const notAfter = l.status.certificate?.notAfter
    return notAfter === undefined ? undefined : Date.parse(notAfter) / 1000
  }, Math.min, 'min')
  // Load shedding (overload.ts): what a listener refused, and how close it runs to its target.
  gauge('fastify_pool_shedding', '1 while the listener answers 503 to requests that waited too long (load shedding), else 0', l => l.overload === undefined ? undefined : (l.overload.shedding ? 1 : 0), Math.max, 'max')
  gauge('fastify_pool_connections_waiting', '1 while new connections wait in the listener\'s accept queue (a connection of its own waited there the overload target, in the last second), else 0', l => l.overload === undefined ? undefined : (l.overload.connectionsWait ? 1 : 0), Math.max, 'max')
  gauge('fastify_pool_accept_wait_seconds', 'How long a connection of the listener\'s own waited in its accept queue, measured in the last second (0 otherwise, and on sockets it does not probe)', l => {
    const wait = l.overload?.acceptWait
    return wait === undefined ? undefined : wait / 1000
  }, Math.max, 'max')
  gauge('fastify_pool_waiting_requests', 'Requests waiting for their turn because the listener is over its overload target, per listener', l => l.overload?.waiting, (a, b) => a + b, 'sum')
  gauge('fastify_pool_queue_delay_seconds', 'How long the requests served from the waiting queue waited, recently (0 when none waited in the last second)', l => {
    const delay = l.overload?.delay
    return delay === undefined ? undefined : delay / 1000
  }, Math.max, 'max')
  gauge('fastify_pool_overload_target_seconds', 'The queueing-delay target of a listener (it takes a tenth of it of event-loop time per turn while another listener is served, a quarter while none is)', l => {
    const target = l.overload?.target
    return target === undefined ? undefined : target / 1000
  }, Math.max, 'max')
  gauge('fastify_pool_overload_limit', 'Requests a loop turn admits at the measured cost of one (a tenth of the target over that cost)', l => l.overload?.limit, Math.min, 'min')
  gauge('fastify_pool_accept_queue_length', 'The length of the listener\'s accept queue (16 while its queue of requests stands, else 511); absent on sockets the pool does not set', l => l.overload?.acceptQueue, Math.min, 'min')
  // A canary running: its share, and each generation's answers since it began.
  gauge('fastify_pool_canary_share', 'Percent of the requests a running canary serves (absent when none runs)', l => l.canary?.share, Math.max, 'max')
  const canaryRequests: Gauge<'listener' | 'generation' | 'role'> = new client.Gauge({
    name: 'fastify_pool_canary_requests',
    help: 'Responses of each generation since a running canary began (role canary or serving)',
    labelNames: ['listener', 'generation', 'role'],
    registers,
    aggregator: 'sum',
    collect () {
      canaryRequests.reset()
      for (const l of listenersOf(sinks)) {
        const c = l.canary
        if (c === undefined) continue
        canaryRequests.set({ listener: l.name, generation: String(c.canary.generation), role: 'canary' }, c.canary.requests)
        canaryRequests.set({ listener: l.name, generation: String(c.serving.generation), role: 'serving' }, c.serving.requests)
      }
    }
  })
  const overloadCounter = (name: string, help: string, pick: (o: OverloadStatus) => number): void => {
    const counter: Counter<'listener'> = new client.Counter({
      name,
      help,
      labelNames: ['listener'],
      registers,
      collect () {
        counter.reset()
        const values = new Map<string, number>()
        for (const l of listenersOf(sinks)) {
          if (l.overload !== undefined) values.set(l.name, (values.get(l.name) ?? 0) + pick(l.overload))
        }
        for (const [listener, n] of values) counter.inc({ listener }, n)
      }
    })
  }
  overloadCounter('fastify_pool_shed_total', 'Requests answered 503 with Retry-After by load shedding, without running their route, per listener', o => o.shed)
  overloadCounter('fastify_pool_parked_total', 'Refused connections left unread for Retry-After (or until the queue had room) because the listener refused more than twice what it admitted, per listener', o => o.parked)
  const made: Family = {
    duration: new RouteHistogram('http_request_duration_seconds', 'Time from the request to its response, per listener, method, route pattern and status code', DURATION_BUCKETS),
    restarts: new client.Counter({ name: 'fastify_pool_restarts_total', help: 'Generations swapped in on a live socket (restart, reconfigure, reload)', labelNames: ['listener'], registers }),
    cut: new client.Counter({ name: 'fastify_pool_drain_cut_requests_total', help: 'Requests and upgraded connections cut because a drain or a restart reached its deadline', labelNames: ['listener'], registers }),
    canaries: new client.Counter({ name: 'fastify_pool_canary_total', help: 'Canaries ended, per listener and result (promoted, rolled-back, aborted)', labelNames: ['listener', 'result'], registers }),
    reloads: new client.Counter({ name: 'fastify_pool_reloads_total', help: 'Configuration reloads, by result', labelNames: ['result'], registers }),
    upgrades: new client.Counter({ name: 'fastify_pool_upgrades_total', help: 'Process upgrades (fastify-pool upgrade) by result, counted on across the processes that replace each other', labelNames: ['result'], registers }),
    upgraded: { ok: 0, failed: 0 },
    sinks
  }
  // prom-client types registerMetric() for its own four classes; it takes
  // any object with name, help, type, aggregator, get() and reset()
  // (lib/registry.js), which is what RouteHistogram is.
  Reflect.apply(registry.registerMetric, registry, [made.duration])
  for (const result of ['ok', 'failed']) {
    made.reloads.inc({ result }, 0)
    made.upgrades.inc({ result }, 0)
  }
  families.set(registry, made)
  everyFamily.add(new WeakRef(made))
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

/** A pool metrics are registered on: they add their hooks there, and read its listeners (a Pool is one; this file sits below pool.ts). */
interface Pool extends Iterable<Listener> {
  addHook: <K extends HookName>(name: K, fn: PoolHooks<Listener, unknown>[K]) => unknown
}

/** The metrics of one pool (and of its clones and selections, which share its listeners' context). */
export class PoolMetrics {
  readonly settings: MetricsSettings
  readonly registry: Registry
  #family: Family
  #pools = new Set<WeakRef<Pool>>()
  #known = new WeakSet<Pool>()
  /** Each listener's recorder of request durations. */
  #recorders = new Map<string, ListenerRecorder>()
  readonly #traffic: TrafficWindow

  constructor (settings: MetricsSettings) {
    this.settings = settings
    this.registry = settings.registry ?? new (promClient().Registry)()
    this.#family = family(this.registry)
    this.#traffic = new TrafficWindow(this.#family.duration)
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

  /**
   * Put these metrics on `pool` through its public hooks (call it before the
   * pool starts): each generation of its listeners has its responses
   * recorded, the metrics listener gets the exposition route (never held by
   * load shedding), and swaps, cuts and reloads are counted. Its listeners,
   * and those of its clones, are read by the gauges at each scrape.
   */
  register (pool: Pool): this {
    this.#add(pool)
    // The options a build was made with record its responses (the log
    // controller, when this library makes the instance: recording.ts); the
    // others get hooks. Keyed by the build's info, which both hooks share.
    const recorded = new WeakSet<BuildInfo<Listener, unknown>>()
    pool.addHook('onOptions', (options, info) => {
      if (info.factory) return undefined
      const recording = recordingOptions(options, this.#recorderOf(info.name))
      if (recording !== undefined) recorded.add(info)
      return recording
    })
    pool.addHook('onBuild', (app, info) => {
      if (isPool(info.pool)) this.#add(info.pool as Pool)
      this.#instrument(app, info.name, recorded.has(info), info.http2)
      if (info.name === this.settings.listener) info.exempt(this.settings.path)
    })
    pool.addHook('onSwap', event => { this.#family.restarts.inc({ listener: event.name }) })
    pool.addHook('onCut', event => { this.#family.cut.inc({ listener: event.name }, event.cut) })
    pool.addHook('onReload', event => { this.#family.reloads.inc({ result: event.error === undefined ? 'ok' : 'failed' }) })
    pool.addHook('onCanary', event => { if (event.report !== undefined) this.#family.canaries.inc({ listener: event.name, result: event.report.result }) })
    return this
  }

  /** The listeners the gauges read: those of the pools it was registered on and their clones, each once. */
  * listeners (): Generator<Listener> {
    for (const ref of this.#pools) {
      const pool = ref.deref()
      if (pool === undefined) this.#pools.delete(ref)
      else yield * pool
    }
  }

  #add (pool: Pool): void {
    if (this.#known.has(pool)) return
    this.#known.add(pool)
    this.#pools.add(new WeakRef(pool))
  }

  /** Record a generation's responses (unless its options do), and give the metrics listener the exposition route. */
  #instrument (app: FastifyInstance, listener: string, recorded: boolean, http2: boolean): void {
    if (!recorded) recordWithHooks(app, this.#recorderOf(listener), http2)
    if (listener !== this.settings.listener) return
    const custom = this.settings.exposition
    app.get(this.settings.path, { logLevel: 'warn' }, async (_request, reply) => {
      reply.header('content-type', this.registry.contentType).header('cache-control', 'no-store')
      return custom === undefined ? this.exposition() : custom()
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

  /**
   * Each listener's request rate, 5xx share and p50/p99 latency over about
   * the last 10 s (traffic.ts), by listener name, from the request-duration
   * histogram of the registry.
   */
  traffic (names?: Iterable<string>): Map<string, TrafficFigures> { return this.#traffic.read(names) }

  /** The recorder of one listener: kept per listener name, so that restarts and reloads count on. */
  #recorderOf (listener: string): ListenerRecorder {
    let recorder = this.#recorders.get(listener)
    if (recorder !== undefined) return recorder
    recorder = new ListenerRecorder(this.#family.duration, listener)
    // Counts start at 0 for every listener, so a rate() has a first sample.
    this.#family.restarts.inc({ listener }, 0)
    this.#family.cut.inc({ listener }, 0)
    this.#recorders.set(listener, recorder)
    return recorder
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

let listening = false
/**
 * Process upgrades are counted from the command's channel (fastify-pool-cli
 * publishes them; they are no pool's event): one subscription per process,
 * for every registry.
 */
function listenToEvents (): void {
  if (listening) return
  listening = true
  subscribe(CHANNELS.upgrade, (message) => {
    const { counts } = message as UpgradeEvent
    for (const weak of everyFamily) {
      const ref = weak.deref()
      if (ref === undefined) { everyFamily.delete(weak); continue }
      for (const result of ['ok', 'failed'] as const) {
        const more = counts[result] - ref.upgraded[result]
        if (more > 0) { ref.upgrades.inc({ result }, more); ref.upgraded[result] = counts[result] }
      }
    }
  })
}
