// Every error fastify-pool throws, in one table. `err.code` is the contract
// users match on; each code is documented in docs/errors.md and a test keeps
// the two in step.
import createError from '@fastify/error'

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

// --- Arguments ---------------------------------------------------------------
export const FST_POOL_PARAM_EMPTY = createError<[string]>(
  'FST_POOL_PARAM_EMPTY', 'Missing or empty parameter: %s', 500, TypeError)

export const FST_POOL_INVALID_ARGUMENT = createError<[string]>(
  'FST_POOL_INVALID_ARGUMENT', 'Invalid argument: %s', 500, TypeError)

export const FST_POOL_NOT_FOUND = createError<[string]>(
  'FST_POOL_NOT_FOUND', 'No listener named or bound to "%s" in this pool', 500)

// --- Configuration -----------------------------------------------------------
export const FST_POOL_VALIDATE = createError<[string]>(
  'FST_POOL_VALIDATE', 'Invalid pool configuration:\n%s', 500)

export const FST_POOL_ADD = createError<[string]>(
  'FST_POOL_ADD', 'Cannot add listener: %s', 500)

// --- Lifecycle ---------------------------------------------------------------
export const FST_POOL_START = createError<[string]>(
  'FST_POOL_START', 'Failed to start: %s', 500)

export const FST_POOL_STOP = createError<[string]>(
  'FST_POOL_STOP', 'Failed to stop: %s', 500)

export const FST_POOL_RESTART = createError<[string]>(
  'FST_POOL_RESTART', 'Failed to restart: %s', 500)

export const FST_POOL_RELOAD = createError<[string]>(
  'FST_POOL_RELOAD', 'Failed to reload, the previous configuration was restored: %s', 500)

export const FST_POOL_FACTORY = createError<[string]>(
  'FST_POOL_FACTORY', 'The factory of listener "%s" must return a Fastify instance built with the options it was given (they carry the listener\'s server)', 500)

export const FST_POOL_TLS = createError<[string, string]>(
  'FST_POOL_TLS', 'Cannot set TLS on listener "%s": %s', 500)

// --- Monitoring --------------------------------------------------------------
export const FST_POOL_MONITOR = createError<[string]>(
  'FST_POOL_MONITOR', 'Health check failed: %s', 500)

type Ctor<E> = new (summary: string) => E

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
