// Loading a pool configuration file (YAML, JSON, or a JS module exporting an
// object): parse, interpolate the environment, load the handler modules, and
// validate everything, reporting every problem with its file and field.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { errors, hasIssues, isPoolError, type PeriodicMonitorOptions, type ControlOptions, resolvePoolOptions, type Handler, type MetricsOptions, type ListenerConfig, type NormalizedConfig, type PoolDefaults, type PoolOptions, type ResolvedPoolOptions, type ValidationIssue } from 'fastify-pool'
import { certificateInfo, fileFieldIssues, EXPIRY_WARNING_DAYS, PoolFileSchema, isWorkers, workersProblem } from 'fastify-pool/config'
import { monitorIssues } from 'fastify-pool/monitor'
import { DEV_CERT_ORGANIZATION } from './dev-cert.ts'
import { importHandlers } from './handler-modules.ts'
import type { Env } from './interpolate.ts'
import { CONFIG_EXTENSIONS, fileError, interpolatedDocument, readDocument as readPlainDocument, type DocumentOptions } from './document.ts'
import { formatIssue, type FileIssue } from './file-issue.ts'

/** A problem in a configuration file. `path` is the field (empty for the file as a whole). */
export { displayPath, formatIssue, type FileIssue } from './file-issue.ts'
export { CONFIG_EXTENSIONS, fileError }

/** A pool file read and interpolated, with numbers and booleans where the schema wants them; nothing checked. */
export function readDocument (file: string, options: Omit<DocumentOptions, 'convert'> = {}): ReturnType<typeof readPlainDocument> {
  return readPlainDocument(file, { ...options, convert: convertWhole })
}

/** What createPool() and pool.reload() take, read from a file. */
export interface FilePoolOptions {
  /** The listeners, checked (validateConfig()'s output): createPool() and reload() do not check them again. */
  servers: NormalizedConfig[]
  defaults: PoolDefaults
  /** Absent when the file names no handlers: listeners then serve only their health routes. */
  handlers?: Record<string, Handler>
  /** The file's folder: relative TLS and unix socket paths resolve against it. */
  baseDir: string
  /** Prometheus metrics, as the file sets them (absent: off). */
  metrics?: boolean | MetricsOptions
  /** The control API, as the file sets it (absent: off). */
  control?: ControlOptions
  /** Periodic health checks, started with the pool by `fastify-pool start` (absent: off). */
  monitor?: boolean | PeriodicMonitorOptions
  /** `fastify-pool start`: how many processes run the pool (absent: one). */
  workers?: number | 'auto'
}

export interface LoadedConfig {
  /** Absolute path of the file. */
  file: string
  /** What createPool() takes, resolved once (with what LoadOptions.plug added). */
  pool: ResolvedPoolOptions
  /** The file's sections as it sets them (servers resolved). */
  options: FilePoolOptions
  /** Handler key -> absolute path of the module it came from (functions given in a JS config are absent). */
  modules: Record<string, string>
  /** The text that was parsed (YAML and JSON files). */
  text?: string
}

export interface LoadOptions {
  /** Variables for `${VAR}` expressions (default: process.env). */
  env?: Env
  /** Folder a relative `file` is resolved against (default: the working directory). */
  cwd?: string
  /**
   * The file's text, read before (YAML and JSON; a JS config is imported
   * again): a cluster worker gets the text its primary validated, so that a
   * worker replaced while the file holds an unfinished edit starts from the
   * configuration in force, not from the disk.
   */
  text?: string
  /**
   * What a running command adds to the file's pool options before they are
   * resolved: its logger, its control and metrics hooks, handlers that see
   * `app.pool`. Resolved with the file, so nothing is checked twice.
   */
  plug?: (options: PoolOptions) => PoolOptions
}

/**
 * Read, interpolate and validate a pool configuration file, and import its
 * handler modules. Throws FST_POOL_VALIDATE whose `errors` list every problem
 * (`{ file, path, message }`) and whose message prints them as
 * `pool.yaml: servers[1].tls.cert: ...`.
 */
export async function loadConfigFile (file: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  if (typeof file !== 'string' || file === '') throw new errors.FST_POOL_PARAM_EMPTY('file')
  const cwd = options.cwd ?? process.cwd()
  const path = resolve(cwd, file)
  const baseDir = dirname(path)
  const issues: ValidationIssue[] = []
  const fail = (more: Array<Omit<FileIssue, 'file'>>): never => { throw fileError(path, cwd, more) }

  const read = await interpolatedDocument(path, cwd, options)
  const { text } = read
  issues.push(...read.issues)
  // A JS config may give handlers as functions: they were kept out of the interpolation.
  const inline: Record<string, Handler> = {}
  for (const [key, fn] of Object.entries(read.functions)) inline[key] = fn as Handler
  // The module paths (or a wrong value, which fileFieldIssues() reports).
  const handlerPaths = read.doc.handlers
  const doc = convertWhole(read.doc, read.whole)

  issues.push(...fileFieldIssues(doc))

  const { handlers, modules } = handlerPaths !== null && typeof handlerPaths === 'object'
    ? await importHandlers(doc.handlers as Record<string, unknown> ?? {}, path, inline, issues)
    : { handlers: { ...inline }, modules: {} }

  const servers = (doc.servers ?? []) as ListenerConfig[]
  const defaults = (doc.defaults ?? {}) as PoolDefaults
  const given = handlerPaths === undefined ? undefined : handlers
  const metrics = doc.metrics as boolean | MetricsOptions | undefined
  const control = doc.control as ControlOptions | undefined
  let pool: ResolvedPoolOptions | undefined
  try {
    // Resolved once, with what the command plugs in: createPool() takes it as
    // it is, and the certificates are read once on the way to the socket.
    const plain: PoolOptions = { servers, defaults, baseDir, ...(given === undefined ? {} : { handlers: given }), ...(metrics === undefined ? {} : { metrics }), ...(control === undefined ? {} : { control }) }
    pool = resolvePoolOptions(options.plug === undefined ? plain : options.plug(plain))
  } catch (err) {
    if (!hasIssues(err)) throw err
    for (const i of err.errors) if (!issues.some(o => o.path === i.path)) issues.push(i)
  }
  const monitor = doc.monitor as boolean | PeriodicMonitorOptions | undefined
  issues.push(...monitorIssues(monitor))
  const workersIssue = doc.workers === undefined ? undefined : workersProblem(doc.workers)
  if (workersIssue !== undefined) issues.push({ path: 'workers', message: workersIssue })
  const workers = isWorkers(doc.workers) ? doc.workers : undefined
  if (issues.length > 0 || pool === undefined) return fail(issues)
  return {
    file: path,
    pool,
    options: { servers: [...pool.servers], defaults, ...(given === undefined ? {} : { handlers: given }), baseDir, ...(metrics === undefined ? {} : { metrics }), ...(control === undefined ? {} : { control }), ...(monitor === undefined ? {} : { monitor }), ...(workers === undefined ? {} : { workers }) },
    modules,
    ...(text === undefined ? {} : { text })
  }
}

/** Values that were one whole `${VAR}` become numbers or booleans where the schema wants them. */
function convertWhole (doc: Record<string, unknown>, whole: Array<Array<string | number>>): Record<string, unknown> {
  for (const at of whole) {
    let parent: unknown = doc
    for (const key of at.slice(0, -1)) parent = (parent as Record<string | number, unknown>)?.[key]
    const last = at[at.length - 1]
    if (last === undefined || parent === null || typeof parent !== 'object') continue
    const holder = parent as Record<string | number, unknown>
    const text = holder[last]
    if (typeof text !== 'string') continue
    const types = typesAt(PoolFileSchema, at)
    if (types.has('string')) continue
    if ((types.has('integer') || types.has('number')) && /^-?\d+(\.\d+)?$/.test(text.trim())) holder[last] = Number(text)
    else if (types.has('boolean') && (text === 'true' || text === 'false')) holder[last] = text === 'true'
  }
  return doc
}

/** A JSON Schema node as far as typesAt() reads it: each field is looked at before it is used. */
type SchemaNode = Readonly<Record<string, unknown>>

function isNode (value: unknown): value is SchemaNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function nodesIn (value: unknown): SchemaNode[] {
  if (Array.isArray(value)) return value.filter(isNode)
  return isNode(value) ? Object.values(value).filter(isNode) : []
}

/** The JSON types the schema accepts at a path (through objects, arrays and unions). */
function typesAt (schema: SchemaNode, at: ReadonlyArray<string | number>): Set<string> {
  let nodes: SchemaNode[] = [schema]
  for (const key of at) {
    const next: SchemaNode[] = []
    const visit = (n: SchemaNode): void => {
      if (n.anyOf !== undefined) { nodesIn(n.anyOf).forEach(visit); return }
      if (typeof key === 'number' && isNode(n.items)) next.push(n.items)
      const property = typeof key === 'string' && isNode(n.properties) ? n.properties[key] : undefined
      if (isNode(property)) next.push(property)
      if (typeof key === 'string') next.push(...nodesIn(n.patternProperties))
    }
    nodes.forEach(visit)
    nodes = next
  }
  const types = new Set<string>()
  const collect = (n: SchemaNode): void => {
    if (n.anyOf !== undefined) nodesIn(n.anyOf).forEach(collect)
    else if (typeof n.type === 'string') types.add(n.type)
    else if (n.const !== undefined) types.add(typeof n.const)
    else types.add('string') // unknown shapes (e.g. fastify pass-through): leave the text alone
  }
  nodes.forEach(collect)
  return types
}

/**
 * The TLS certificate and key files a configuration names that do not exist
 * yet (both missing, as paths rather than PEM text): where `start --dev-cert`
 * writes a development certificate. Problems are left to loadConfigFile().
 */
/** True when `file` holds a certificate that --dev-cert made and that expires within EXPIRY_WARNING_DAYS days (or has expired). */
function ownDevCertificateExpiring (file: string): boolean {
  let pem: string
  try { pem = readFileSync(file, 'utf8') } catch { return false }
  const info = certificateInfo(pem)
  return info !== undefined && info.subject.includes(DEV_CERT_ORGANIZATION) && info.daysLeft < EXPIRY_WARNING_DAYS
}

export async function missingCertificates (file: string, options: LoadOptions = {}): Promise<Array<{ cert: string, key: string }>> {
  const cwd = options.cwd ?? process.cwd()
  const path = resolve(cwd, file)
  // Problems are left to loadConfigFile(): a file that cannot be read names no certificate.
  const read = await interpolatedDocument(path, cwd, options).catch(() => undefined)
  if (read === undefined) return []
  const doc: { defaults?: unknown, servers?: unknown } = read.doc
  const asObject = (v: unknown): Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {}
  const defaults = asObject(asObject(doc.defaults).tls)
  const blocks = Array.isArray(doc.servers) ? doc.servers.map(s => asObject(s).tls).filter(t => t !== undefined && t !== false) : []
  const out: Array<{ cert: string, key: string }> = []
  for (const own of blocks.length > 0 ? blocks : [undefined]) {
    const tls = { ...defaults, ...asObject(own) }
    const cert = tls.cert
    const key = tls.key
    if (typeof cert !== 'string' || typeof key !== 'string' || cert.includes('-----BEGIN') || key.includes('-----BEGIN')) continue
    const pair = { cert: resolve(dirname(path), cert), key: resolve(dirname(path), key) }
    if (out.some(p => p.cert === pair.cert)) continue
    // Missing, or a development certificate of ours that has expired or soon will.
    if ((!existsSync(pair.cert) && !existsSync(pair.key)) || ownDevCertificateExpiring(pair.cert)) out.push(pair)
  }
  return out
}

/** One line for why a pool file could not be started (for the process an upgrade replaces). */
export function problemLine (err: unknown, shown: string): string {
  if (isPoolError(err, 'FST_POOL_VALIDATE') && hasIssues<FileIssue>(err)) {
    const all = err.errors.map(i => formatIssue(i, shown))
    return `${shown} is invalid: ${all[0] ?? ''}${all.length > 1 ? ` (and ${all.length - 1} more)` : ''}`
  }
  return err instanceof Error ? err.message : String(err)
}
