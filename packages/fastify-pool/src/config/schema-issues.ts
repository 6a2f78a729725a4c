// TypeBox's errors as this library's issues: one per field, at its exact path
// (inside unions too), saying what was expected, with the value quoted short.
import type { TSchema } from '@sinclair/typebox'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import { quote, type ValidationIssue } from '../base/errors.ts'
import { didYouMean } from '../base/suggest.ts'

function toPath (pointer: string, prefix: string): string {
  let out = prefix
  for (const part of pointer.split('/').slice(1)) {
    out += /^\d+$/.test(part) ? `[${part}]` : (out === '' ? part : `.${part}`)
  }
  return out
}

/** How an unknown field is worded; what follows it (a suggestion) is kept by those who word it again (options.ts, schema.ts). */
export const UNKNOWN = 'is not a known option'

export function schemaIssues (schema: Parameters<typeof Value.Errors>[0], value: unknown, prefix: string, issues: ValidationIssue[], skip: readonly string[] = []): void {
  const seen = new Set<string>()
  for (const error of Value.Errors(schema, value)) {
    const path = toPath(error.path, prefix)
    // A union reports once per branch; one message per field is enough.
    if ([...seen].some(p => path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`))) continue
    seen.add(path)
    if (skip.includes(path)) continue
    if (error.type === ValueErrorType.ObjectRequiredProperty) issues.push({ path, message: 'is required' })
    else if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      // The object's schema: a typo of one of its fields is named (`keepaliveTimeout`: did you mean "keepAliveTimeout"?).
      const key = error.path.split('/').pop() ?? ''
      issues.push({ path, message: `${UNKNOWN}${didYouMean(key, Object.keys((error.schema as { properties?: object }).properties ?? {}))}` })
    } else if (error.type === ValueErrorType.StringMinLength && error.schema.minLength === 1 && typeof error.schema.expected !== 'string') issues.push({ path, message: 'must not be empty' })
    else if (error.type === ValueErrorType.Union) {
      // An object (or array) where a union allows one: the problems are inside
      // it, at their own paths, as they are for a field that is not a union.
      const branch = branchFor(error.schema, error.value)
      if (branch !== undefined) schemaIssues(branch, error.value, path, issues)
      else issues.push({ path, message: `must be ${expected(error.schema)}${describe(error.value, error.schema)}` })
      seen.add(path)
      continue
    } else if (typeof error.schema.expected === 'string') {
      // A schema that words what it expects (options.ts) is quoted as it is.
      issues.push({ path, message: `must be ${error.schema.expected as string}${describe(error.value, error.schema)}` })
    } else issues.push({ path, message: `${error.message.toLowerCase()}${describe(error.value, error.schema)}` })
  }
}

/** The member of a union that has the value's shape (object or array), if there is one. */
function branchFor (schema: TSchema, value: unknown): TSchema | undefined {
  if (!Array.isArray(schema.anyOf) || typeof value !== 'object' || value === null) return undefined
  const type = Array.isArray(value) ? 'array' : 'object'
  return (schema.anyOf as TSchema[]).find(s => s.type === type)
}

/** "a string or an integer": what a schema accepts, in words. */
function expected (schema: TSchema): string {
  if (typeof schema.expected === 'string') return schema.expected
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).map(expected).join(' or ')
  if (schema.const !== undefined) return JSON.stringify(schema.const)
  switch (schema.type) {
    case 'object': return 'an object'
    case 'array': return 'an array'
    case 'integer': return 'an integer'
    case 'string': return schema.pattern === '^/' ? 'a path starting with "/"' : 'a string'
    default: return `a ${String(schema.type)}`
  }
}

/** What was given, quoted short; a secret (a schema marked `writeOnly`, as the control token is) is never quoted, only measured. */
function describe (value: unknown, schema?: TSchema): string {
  if (value === undefined) return ''
  if (schema?.writeOnly === true) return typeof value === 'string' ? ` (got ${value.length} characters)` : ` (got ${typeof value})`
  return ` (got ${quote(value)})`
}
