// Validation and normalisation of listener configurations. Every problem is
// collected, with its field path, before anything is built.
import { bindsOverlap, deriveExpose, formatAddress, parseListen } from './address.ts'
import { hasIssues, quote, validationError, type ValidationIssue } from '../base/errors.ts'
import { BUILTIN_DEFAULTS, ListenerConfigSchema, PoolDefaultsSchema } from './schema.ts'

export { BUILTIN_DEFAULTS }
import { schemaIssues } from './schema-issues.ts'
import { filesStamp, loadTls, type ServerTlsOptions } from './tls.ts'
import type { ListenAddress, ListenerConfig, NormalizedConfig, OverloadSettings, PoolDefaults, TlsConfig } from './types.ts'

export type { ListenerConfig, NormalizedConfig, PassThroughOptions, PoolDefaults } from './types.ts'

const MANAGED = ['serverFactory', 'https', 'http2', 'logger', 'loggerInstance', 'bodyLimit', 'connectionTimeout', 'keepAliveTimeout', 'requestTimeout'] as const

export interface ValidateOptions {
  /** Listener configs; one that validateConfig() returned is taken as checked (only names, binds and handler keys are checked again). */
  servers?: ReadonlyArray<ListenerConfig | NormalizedConfig>
  defaults?: PoolDefaults
  /** A plugin for every listener, or handler key -> anything (only the keys are checked). */
  handlers?: unknown
  /** Folder relative TLS and socket paths are resolved against (default: the working directory). */
  baseDir?: string
}

/** The context new listeners are checked against: what is already in the pool. */
export interface ExistingListener { name: string, bind: string, address: ListenAddress }

function handlerKeys (handlers: unknown): Set<string> | 'any' | undefined {
  if (handlers === undefined || handlers === null) return undefined
  // A plugin for all serves every key; a value of the wrong type is reported by the caller, not here.
  if (typeof handlers !== 'object' || Array.isArray(handlers)) return 'any'
  return new Set(Object.keys(handlers))
}

/**
 * Check a whole pool configuration without building anything.
 * Returns the normalised listener configs; throws FST_POOL_VALIDATE listing every problem.
 */
export function validateConfig (options: ValidateOptions, existing: readonly ExistingListener[] = [], pathPrefix = 'servers'): NormalizedConfig[] {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw validationError([{ path: 'options', message: `must be an object with servers (got ${options === null ? 'null' : Array.isArray(options) ? 'array' : typeof options})` }])
  }
  const servers = options.servers ?? []
  const defaults = options.defaults ?? {}
  if (!Array.isArray(servers)) {
    throw validationError([{ path: pathPrefix, message: `must be an array of listener configs (got ${typeof servers})` }])
  }
  if (typeof defaults !== 'object' || defaults === null) {
    throw validationError([{ path: 'defaults', message: 'must be an object' }])
  }
  const issues: ValidationIssue[] = []
  schemaIssues(PoolDefaultsSchema, stringifyTls(defaults), 'defaults', issues)
  const ctx: Context = {
    issues,
    defaults,
    baseDir: options.baseDir ?? process.cwd(),
    keys: handlerKeys(options.handlers),
    binds: new BindIndex(existing),
    names: new Map(existing.map(e => [e.name, e.bind]))
  }
  const out: NormalizedConfig[] = []
  servers.forEach((server, i) => {
    const at = `${pathPrefix}[${i}]`
    const config = isResolved(server) ? recheck(server, at, i, ctx) : normaliseListener(server, at, i, ctx)
    if (config !== undefined) out.push(config)
  })
  if (issues.length > 0) throw validationError(issues)
  return out
}

/** What checking one listener needs from the whole configuration. */
interface Context {
  issues: ValidationIssue[]
  defaults: PoolDefaults
  baseDir: string
  keys: Set<string> | 'any' | undefined
  binds: BindIndex
  /** Names seen so far, with the bind of the listener that has each. */
  names: Map<string, string>
}

/**
 * The binds seen so far, by port or socket path: only those can clash, and
 * a linear scan made validating thousands of listeners quadratic.
 */
class BindIndex {
  #byKey = new Map<string | number, ExistingListener[]>()

  constructor (existing: readonly ExistingListener[]) {
    for (const e of existing) this.add(e)
  }

  /** The listener already holding an address that overlaps this one, if any. */
  clash (address: ListenAddress): ExistingListener | undefined {
    const key = bucket(address)
    return key === undefined ? undefined : this.#byKey.get(key)?.find(s => bindsOverlap(address, s.address))
  }

  add (e: ExistingListener): void {
    const key = bucket(e.address)
    if (key === undefined) return
    const list = this.#byKey.get(key)
    if (list === undefined) this.#byKey.set(key, [e])
    else list.push(e)
  }
}

function bucket (a: ListenAddress): string | number | undefined {
  if (a.kind === 'tcp') return a.port === 0 ? undefined : a.port
  return a.kind === 'unix' ? a.path : formatAddress(a)
}

/** Check one listener's config; its normalised form, or undefined when it has a problem (added to ctx.issues). */
function normaliseListener (server: ListenerConfig, at: string, index: number, ctx: Context): NormalizedConfig | undefined {
  const { issues, defaults, baseDir } = ctx
  if (typeof server !== 'object' || server === null) {
    issues.push({ path: at, message: 'must be an object with at least name and listen' })
    return undefined
  }
  // parseListen explains a bad listen value better than the schema can.
  schemaIssues(ListenerConfigSchema, stringifyTls(server), at, issues, server.listen === undefined ? [] : [`${at}.listen`])
  const before = issues.length
  const name = typeof server.name === 'string' ? server.name : undefined
  const parsed = parseListen(server.listen, baseDir)
  if (!parsed.ok && server.listen !== undefined) issues.push({ path: `${at}.listen`, message: parsed.message })
  const address = parsed.ok ? parsed.address : undefined
  const bind = address === undefined ? undefined : formatAddress(address)
  checkUnique(name, address, bind, at, index, ctx)
  const tlsRead = resolveTls(server, at, ctx)
  const tls = tlsRead?.tls
  const expose = resolveExpose(server, address, tls !== undefined, at, issues)
  const handler = server.handler ?? 'default'
  checkHandlerKey(server, handler, at, ctx)
  const pick = <K extends 'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout' | 'headersTimeout' | 'sendTimeout' | 'upgradeDrainTimeout' | 'upgradeCloseWindow' | 'bodyLimit'>(k: K): number =>
    (server[k] ?? defaults[k] ?? BUILTIN_DEFAULTS[k])
  checkTimeoutsAndManaged(server, pick('requestTimeout'), pick('headersTimeout'), at, issues)
  if (issues.length > before || address === undefined || bind === undefined || name === undefined) return undefined
  // Field by field like the rest: a listener's health object overrides only the routes it names.
  const health = server.health === false || (server.health === undefined && defaults.health === false)
    ? false
    : { ...(defaults.health === false ? {} : defaults.health), ...server.health }
  return resolved({
    name,
    listen: server.listen,
    address,
    bind,
    expose,
    handler,
    disabled: server.disabled ?? false,
    optional: server.optional ?? false,
    tls,
    http2: server.http2 ?? false,
    stopOrder: server.stopOrder ?? 0,
    connectionTimeout: pick('connectionTimeout'),
    keepAliveTimeout: pick('keepAliveTimeout'),
    requestTimeout: pick('requestTimeout'),
    headersTimeout: pick('headersTimeout'),
    sendTimeout: pick('sendTimeout'),
    upgradeDrainTimeout: pick('upgradeDrainTimeout'),
    upgradeCloseWindow: pick('upgradeCloseWindow'),
    bodyLimit: pick('bodyLimit'),
    logLevel: server.logLevel ?? defaults.logLevel,
    health: Object.freeze({
      liveness: health === false ? false : health.liveness ?? BUILTIN_DEFAULTS.liveness,
      readiness: health === false ? false : health.readiness ?? BUILTIN_DEFAULTS.readiness
    }),
    overload: resolveOverload(server.overload, defaults.overload),
    fastify: Object.freeze({ ...server.fastify }),
    baseDir,
    source: server
  }, tlsRead?.material)
}

/** Field by field like health: a listener's overload object overrides only what it names; false turns it off. */
function resolveOverload (own: ListenerConfig['overload'], inherited: PoolDefaults['overload']): OverloadSettings | false {
  if (own === false || (own === undefined && inherited === false)) return false
  const merged = { ...(inherited === false ? {} : inherited), ...own }
  return Object.freeze({
    target: merged.target ?? BUILTIN_DEFAULTS.overloadTarget,
    maxWait: merged.maxWait ?? BUILTIN_DEFAULTS.overloadMaxWait,
    retryAfter: merged.retryAfter ?? BUILTIN_DEFAULTS.retryAfter,
    exempt: Object.freeze([...(merged.exempt ?? [])])
  })
}

/**
 * A configuration this module resolved carries this key (not enumerable: a
 * spread, JSON and a log leave it out, and no one else can make it). Given
 * back (by the command, which checked its file, or by a caller of
 * validateConfig()), it is not checked again: only what depends on its
 * neighbours (unique names and binds, handler keys) is. It holds the TLS
 * material read while checking, which serves every start and restart for as
 * long as the files are unchanged (same inode, size and modification time):
 * the files are read once on the way to the socket, and again once renewed.
 */
const RESOLVED = Symbol('fastify-pool.resolved')
interface ReadTls { options: ServerTlsOptions, stamp: string, files: string[] }
interface Resolution { tls: ReadTls | undefined }

function resolved (config: NormalizedConfig, tls: ReadTls | undefined): NormalizedConfig {
  const resolution: Resolution = Object.freeze({ tls })
  Object.defineProperty(config, RESOLVED, { value: resolution, enumerable: false })
  return Object.freeze(config)
}

/** Whether validateConfig() made this configuration. */
export function isResolved (config: unknown): config is NormalizedConfig {
  return typeof config === 'object' && config !== null && Object.hasOwn(config, RESOLVED)
}

function resolutionOf (config: NormalizedConfig): Resolution | undefined {
  const value: unknown = Reflect.get(config, RESOLVED)
  return typeof value === 'object' && value !== null && 'tls' in value ? value as Resolution : undefined
}

/** A config this module made, checked again only against its neighbours. */
function recheck (config: NormalizedConfig, at: string, index: number, ctx: Context): NormalizedConfig | undefined {
  const before = ctx.issues.length
  checkUnique(config.name, config.address, config.bind, at, index, ctx)
  checkHandlerKey(config.source, config.handler, at, ctx)
  return ctx.issues.length > before ? undefined : config
}

/** A name used twice, or an address that another listener already binds. */
function checkUnique (name: string | undefined, address: ListenAddress | undefined, bind: string | undefined, at: string, index: number, ctx: Context): void {
  if (name !== undefined) {
    const twin = ctx.names.get(name)
    if (twin !== undefined) ctx.issues.push({ path: `${at}.name`, message: `${quote(name)} is already used by another listener (${twin}); names must be unique` })
    else ctx.names.set(name, bind ?? at)
  }
  if (address === undefined || bind === undefined) return
  const clash = ctx.binds.clash(address)
  if (clash !== undefined) {
    ctx.issues.push({ path: `${at}.listen`, message: clash.bind === bind ? `${bind} is already used by listener "${clash.name}"` : `${bind} overlaps ${clash.bind} of listener "${clash.name}"` })
  }
  ctx.binds.add({ name: name ?? `#${index}`, bind, address })
}

/** The listener's TLS settings merged over defaults.tls, with their files checked; undefined for plain HTTP. */
function resolveTls (server: ListenerConfig, at: string, ctx: Context): { tls: TlsConfig, material: ReadTls | undefined } | undefined {
  const { issues } = ctx
  const defaultTls = ctx.defaults.tls
  // A tls value of the wrong type was reported by the schema; it turns nothing on.
  const ownTls = typeof server.tls === 'object' && server.tls !== null ? server.tls : undefined
  if (server.tls === false || (server.tls !== undefined && ownTls === undefined)) return undefined
  if (ownTls === undefined && defaultTls === undefined) return undefined
  const tls: TlsConfig = { ...defaultTls, ...ownTls }
  // Nothing is read from disk for TLS settings the schema already refused.
  if (issues.some(i => i.path.startsWith(`${at}.tls`) || i.path.startsWith('defaults.tls'))) return { tls, material: undefined }
  const files: string[] = []
  const read = loadTls(tls, ctx.baseDir, (field, message) => {
    // Blame the listener when it set the field (or has TLS of its own and no default fills it).
    const key = field.split('[')[0] as keyof TlsConfig
    const path = ownTls !== undefined && (key in ownTls || defaultTls?.[key] === undefined) ? `${at}.tls.${field}` : `defaults.tls.${field}`
    if (!issues.some(i => i.path === path && i.message === message)) issues.push({ path, message })
  }, files)
  const stamp = filesStamp(files)
  return { tls, material: read === undefined || stamp === undefined ? undefined : { options: read, stamp, files } }
}

/** The public URL: as configured (checked), or derived from the bind. */
function resolveExpose (server: ListenerConfig, address: ListenAddress | undefined, secure: boolean, at: string, issues: ValidationIssue[]): string | undefined {
  if (server.expose !== undefined && typeof server.expose === 'string') {
    let url: URL | undefined
    try { url = new URL(server.expose) } catch { url = undefined }
    if (url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:')) return server.expose
    issues.push({ path: `${at}.expose`, message: `${quote(server.expose)} is not an http:// or https:// URL` })
    return undefined
  }
  return address === undefined ? undefined : deriveExpose(address, secure)
}

/**
 * With no handlers at all a listener on the default key serves only its
 * health routes; a key named on purpose, or any key missing from a handler
 * map, is a mistake.
 */
function checkHandlerKey (server: ListenerConfig, handler: unknown, at: string, ctx: Context): void {
  const keys = ctx.keys
  if (typeof handler !== 'string' || keys === 'any') return
  if (keys === undefined ? server.handler === undefined : keys.has(handler)) return
  const known = keys === undefined || keys.size === 0 ? 'no handlers were given' : `known keys: ${[...keys].join(', ')}`
  ctx.issues.push({ path: `${at}.handler`, message: `no handler for key ${quote(handler)} (${known})` })
}

/** headersTimeout above requestTimeout (Node refuses it), and Fastify options the pool manages. */
function checkTimeoutsAndManaged (server: ListenerConfig, requestTimeout: unknown, headersTimeout: unknown, at: string, issues: ValidationIssue[]): void {
  // Values of the wrong type were reported by the schema; only numbers are compared.
  if (typeof requestTimeout === 'number' && typeof headersTimeout === 'number' && requestTimeout > 0 && headersTimeout > requestTimeout) {
    issues.push({ path: `${at}.headersTimeout`, message: `${headersTimeout} must not exceed requestTimeout (${requestTimeout})` })
  }
  for (const key of MANAGED) {
    if (typeof server.fastify === 'object' && server.fastify !== null && key in server.fastify) {
      issues.push({ path: `${at}.fastify.${key}`, message: `is managed by fastify-pool; ${managedHint(key)}` })
    }
  }
}

function managedHint (key: typeof MANAGED[number]): string {
  switch (key) {
    case 'https': return 'use the listener\'s tls field'
    case 'http2': return 'use the listener\'s http2 field'
    case 'logger': case 'loggerInstance': return 'give the pool a logger and set the listener\'s logLevel'
    case 'serverFactory': return 'the listener owns its server; use the pool\'s factory option to build the Fastify instance'
    default: return `use the listener's ${key} field`
  }
}

/** Buffers are valid PEM sources in code; the schema speaks of strings. */
function stringifyTls<T extends { tls?: unknown }> (config: T): T {
  const tls = config.tls
  if (tls === undefined || tls === false || typeof tls !== 'object' || tls === null) return config
  const copy: Record<string, unknown> = { ...tls }
  for (const k of ['cert', 'key', 'ca'] as const) {
    const v = copy[k]
    if (Buffer.isBuffer(v)) copy[k] = v.toString('utf8')
    else if (Array.isArray(v)) copy[k] = v.map(x => Buffer.isBuffer(x) ? x.toString('utf8') : x)
  }
  return { ...config, tls: copy }
}

/** Server TLS options for a resolved config: what it read, while its files are unchanged; else read now. Throws on a problem. */
export function serverTls (config: NormalizedConfig): ServerTlsOptions | undefined {
  if (config.tls === undefined) return undefined
  const read = resolutionOf(config)?.tls
  if (read !== undefined && filesStamp(read.files) === read.stamp) return read.options
  const problems: string[] = []
  const options = loadTls(config.tls, config.baseDir, (field, message) => problems.push(`tls.${field}: ${message}`))
  if (options === undefined) throw new Error(problems.join('; '))
  return options
}

/**
 * validateConfig() for callers that have problems of their own to report in
 * the same error: adds its problems to `issues` instead of throwing.
 */
export function collectConfig (options: ValidateOptions, issues: ValidationIssue[]): NormalizedConfig[] {
  try {
    return validateConfig(options)
  } catch (err) {
    if (!hasIssues(err)) throw err
    issues.push(...err.errors)
    return []
  }
}

/** What a live socket serves: HTTP, HTTPS, HTTP/2 or HTTPS/2. A running listener cannot switch between them. */
export function protocolOf (c: Pick<NormalizedConfig, 'tls' | 'http2'>): string {
  return `${c.tls === undefined ? 'HTTP' : 'HTTPS'}${c.http2 ? '/2' : ''}`
}

/** Why a running listener cannot take `next` on its live socket, or undefined when it can. */
export function liveChangeRefusal (current: NormalizedConfig, next: NormalizedConfig): string | undefined {
  if (next.bind !== current.bind) return `a running listener cannot move from ${current.bind} to ${next.bind}; start a listener on the new address, then stop this one`
  if (protocolOf(next) !== protocolOf(current)) return `the live socket serves ${protocolOf(current)} and cannot switch to ${protocolOf(next)}; stop and start the listener, or use a new bind`
  return undefined
}

/** The configuration with new TLS settings; an expose URL derived from the bind follows the scheme, a configured one is kept. */
export function withTls (c: NormalizedConfig, tls: TlsConfig): NormalizedConfig {
  const expose = c.source.expose === undefined ? deriveExpose(c.address, true) : c.expose
  // Resolved still (the new settings were read and checked by the caller); the files are read at the next start.
  return resolved({ ...c, tls, expose, source: { ...c.source, tls } }, undefined)
}
