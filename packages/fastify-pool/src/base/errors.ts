// Every error fastify-pool throws, in one table. `err.code` is the contract
// users match on; each code is documented in docs/errors.md and a test keeps
// the two in step.
import createError, { type FastifyErrorConstructor } from '@fastify/error'

/** One problem found while validating a configuration. */
export interface ValidationIssue {
  /** Field path in the configuration, e.g. `servers[2].listen`. */
  path: string
  /** What is wrong and what was expected. */
  message: string
}

/** One listener's failure inside an aggregated lifecycle error. */
export interface ListenerFailure {
  name: string
  bind: string
  error: Error
}

export interface AggregateIssues<T> {
  errors: T[]
}

/**
 * An error class of this library: `new FST_POOL_START(message)` makes an
 * Error with `code` 'FST_POOL_START' and `statusCode` 500. Declared with a
 * named type from @fastify/error, so that the published declarations hold
 * under every module resolution (an inferred type named the default import's
 * namespace, which `moduleResolution: bundler` cannot see).
 */
export type PoolErrorClass<C extends string, A extends unknown[] = [string]> = FastifyErrorConstructor<{ code: C, statusCode: 500 }, A>

function define<C extends string, A extends unknown[]> (code: C, message: string, Base?: ErrorConstructor): PoolErrorClass<C, A> {
  return createError<C, 500, A>(code, message, 500, Base)
}

// --- Arguments ---------------------------------------------------------------
export const FST_POOL_PARAM_EMPTY: PoolErrorClass<'FST_POOL_PARAM_EMPTY', [string]> = define('FST_POOL_PARAM_EMPTY', 'Missing or empty parameter: %s', TypeError)

export const FST_POOL_INVALID_ARGUMENT: PoolErrorClass<'FST_POOL_INVALID_ARGUMENT', [string]> = define('FST_POOL_INVALID_ARGUMENT', 'Invalid argument: %s', TypeError)

/** A glob too long, or whose braces expand to too many alternatives (glob.ts). */
export const FST_POOL_GLOB: PoolErrorClass<'FST_POOL_GLOB', [string]> = define('FST_POOL_GLOB', 'Glob refused: %s', TypeError)
export const FST_POOL_NOT_FOUND: PoolErrorClass<'FST_POOL_NOT_FOUND', [string]> = define('FST_POOL_NOT_FOUND', 'No listener named or bound to "%s" in this pool')

// --- Configuration -----------------------------------------------------------
export const FST_POOL_VALIDATE: PoolErrorClass<'FST_POOL_VALIDATE', [string]> = define('FST_POOL_VALIDATE', 'Invalid pool configuration:\n%s')

export const FST_POOL_ADD: PoolErrorClass<'FST_POOL_ADD', [string]> = define('FST_POOL_ADD', 'Cannot add listener: %s')

// --- Lifecycle ---------------------------------------------------------------
export const FST_POOL_START: PoolErrorClass<'FST_POOL_START', [string]> = define('FST_POOL_START', 'Failed to start: %s')

export const FST_POOL_STOP: PoolErrorClass<'FST_POOL_STOP', [string]> = define('FST_POOL_STOP', 'Failed to stop: %s')

export const FST_POOL_RESTART: PoolErrorClass<'FST_POOL_RESTART', [string]> = define('FST_POOL_RESTART', 'Failed to restart: %s')

export const FST_POOL_RELOAD: PoolErrorClass<'FST_POOL_RELOAD', [string]> = define('FST_POOL_RELOAD', 'Failed to reload, the previous configuration was restored: %s')

export const FST_POOL_FACTORY: PoolErrorClass<'FST_POOL_FACTORY', [string]> = define('FST_POOL_FACTORY', 'The factory of listener "%s" must return a Fastify instance built with the options it was given (they carry the listener\'s server)')

export const FST_POOL_TLS: PoolErrorClass<'FST_POOL_TLS', [string, string]> = define('FST_POOL_TLS', 'Cannot set TLS on listener "%s": %s')

// --- Monitoring --------------------------------------------------------------
export const FST_POOL_MONITOR: PoolErrorClass<'FST_POOL_MONITOR', [string]> = define('FST_POOL_MONITOR', 'Health check failed: %s')

type Ctor<E> = new (summary: string) => E

const QUOTE_MAX = 60

/**
 * A value as an error message quotes it: JSON, cut to a short prefix with its
 * length when long (a 30 MB field must not become a 30 MB message).
 */
export function quote (value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= QUOTE_MAX) return JSON.stringify(value)
    return `${JSON.stringify(value.slice(0, QUOTE_MAX)).slice(0, -1)}…" (${value.length.toLocaleString('en-US')} characters)`
  }
  let text: string | undefined
  try { text = JSON.stringify(value) } catch { text = undefined }
  if (text === undefined) return typeof value
  return text.length <= QUOTE_MAX ? text : `${text.slice(0, QUOTE_MAX)}… (${Array.isArray(value) ? `an array of ${value.length}` : typeof value})`
}

/** Build a FST_POOL_VALIDATE error that lists every issue at once. */
export function validationError (issues: ValidationIssue[]): Error & AggregateIssues<ValidationIssue> {
  const text = issues.map(i => `  - ${i.path}: ${i.message}`).join('\n')
  return Object.assign(new FST_POOL_VALIDATE(text), { errors: issues })
}

/** Build an aggregated lifecycle error naming every failed listener and its cause. */
export function listenerFailures<E extends Error> (Err: Ctor<E>, failures: ListenerFailure[]): E & AggregateIssues<ListenerFailure> {
  const text = failures.map(f => `${f.name} (${f.bind}): ${f.error.message}`).join('; ')
  const err = Object.assign(new Err(text), { errors: failures })
  if (failures.length === 1) err.cause = failures[0]?.error
  return err
}

/** True when `err` is an error of this library, optionally with the given code: the way to recognise one across copies of the package. */
export function isPoolError (err: unknown, code?: string): err is Error & { code: string } {
  if (!(err instanceof Error)) return false
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' && c.startsWith('FST_POOL_') && (code === undefined || c === code)
}

/** True when `err` carries a list of problems (FST_POOL_VALIDATE) or of failed listeners (a lifecycle error). */
export function hasIssues<T = ValidationIssue> (err: unknown): err is Error & { code: string } & AggregateIssues<T> {
  return isPoolError(err) && Array.isArray((err as { errors?: unknown }).errors)
}

/** The failure of one listener, from what its call rejected with: its own aggregate's single entry, or the error itself. */
export function failureOf (name: string, bind: string, reason: unknown): ListenerFailure {
  const inner = hasIssues<ListenerFailure>(reason) ? reason.errors[0] : undefined
  return inner ?? { name, bind, error: reason instanceof Error ? reason : new Error(String(reason)) }
}

/** What settle() found: each target that succeeded with its value, each that failed with its failure, in order. */
export interface Settled<L, T> { done: Array<[L, T]>, failed: Array<[L, ListenerFailure]> }

/**
 * Run one call on many targets in parallel and wait for all, whatever each
 * does: the one way the pool acts on several listeners at once (start, stop,
 * restart, a reload's phases). `who` names the listener a target is.
 */
export async function settle<L, T> (targets: readonly L[], call: (l: L) => Promise<T>, who: (l: L) => { name: string, bind: string }): Promise<Settled<L, T>> {
  const results = await Promise.allSettled(targets.map(call))
  const settled: Settled<L, T> = { done: [], failed: [] }
  results.forEach((r, i) => {
    const l = targets[i] as L
    if (r.status === 'fulfilled') settled.done.push([l, r.value])
    else { const { name, bind } = who(l); settled.failed.push([l, failureOf(name, bind, r.reason)]) }
  })
  return settled
}

/**
 * settle() for listeners: resolves with the values of those that succeeded,
 * in order; throws one aggregate error of type `Err` naming every listener
 * that failed.
 */
export async function settleAll<L extends { name: string, bind: string }, T, E extends Error> (targets: readonly L[], call: (l: L) => Promise<T>, Err: Ctor<E>): Promise<T[]> {
  const { done, failed } = await settle(targets, call, l => l)
  if (failed.length > 0) throw listenerFailures(Err, failed.map(([, f]) => f))
  return done.map(([, value]) => value)
}

/**
 * The usual reasons a bind fails, in words. The aggregate error already names
 * the listener and its address, so Node's message ("listen EADDRINUSE: address
 * already in use 127.0.0.1:3000") would say the address twice; it stays the cause.
 */
export function explainListenError (err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code
  const why = code === 'EADDRINUSE'
    ? 'address already in use by another process or listener'
    : code === 'EACCES'
      ? 'permission denied (ports below 1024 need privileges)'
      : code === 'EADDRNOTAVAIL' ? 'address not available on this machine' : undefined
  return why === undefined ? err : Object.assign(new Error(`${code}: ${why}`, { cause: err }), { code })
}

// How a name that is not known is answered, for the command's words too (fastify-pool/errors).
export { didYouMean } from './suggest.ts'
