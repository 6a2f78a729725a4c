// Matching listeners by name, bind address or public URL.
import { FST_POOL_INVALID_ARGUMENT, FST_POOL_PARAM_EMPTY, quote } from './base/errors.ts'
import { compileGlob } from './base/glob.ts'
import type { Field } from './config/types.ts'

export const FIELDS: readonly Field[] = ['name', 'bind', 'expose']

export function checkField (field: unknown, argument: string): asserts field is Field {
  if (!FIELDS.includes(field as Field)) {
    throw new FST_POOL_INVALID_ARGUMENT(`${argument} must be one of ${FIELDS.map(f => `"${f}"`).join(', ')}, got ${quote(field)}`)
  }
}

/**
 * A string is a case-insensitive glob (glob.ts) in which `*` also crosses `/`
 * (URLs and socket paths have slashes); an exact match always counts, so
 * binds such as `[::1]:8080` need no escaping. A RegExp is used as given: it
 * comes from code, never from a request.
 */
export function matcher (match: string | RegExp): (value: string | undefined) => boolean {
  if (match instanceof RegExp) {
    // Drop g and y: they make test() stateful across listeners.
    const re = match.global || match.sticky ? new RegExp(match.source, match.flags.replace(/[gy]/g, '')) : match
    return value => value !== undefined && re.test(value)
  }
  if (typeof match !== 'string') throw new FST_POOL_INVALID_ARGUMENT(`match must be a glob string or a RegExp, got ${typeof match}`)
  if (match === '') throw new FST_POOL_PARAM_EMPTY('match')
  const lower = match.toLowerCase()
  const glob = compileGlob(match)
  return value => value !== undefined && (value.toLowerCase() === lower || glob(value))
}
