// `${VAR}` / `${VAR:-default}` interpolation in the string values of a parsed
// config file. It runs after parsing (as Docker Compose does) so that a value
// can never change the file's structure, and every problem names its field.
import type { ValidationIssue } from 'fastify-pool'

export type Env = Readonly<Record<string, string | undefined>>

/** `$$` is a literal `$`; `${...}` is an expression. */
const TOKEN = /\$(\$|\{([^}]*)\})/g
const EXPRESSION = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([\s\S]*))?$/

export interface Interpolated {
  /** A copy of the value with every expression replaced. */
  value: unknown
  /** Paths (as key lists) of the strings that were exactly one expression: they may be converted to numbers or booleans. */
  whole: Array<Array<string | number>>
}

/**
 * Replace expressions in every string of `value` (keys are left alone).
 * `${VAR}`: VAR, or a problem if unset. `${VAR:-x}`: x if VAR is unset or
 * empty; `${VAR-x}`: x if unset. `${VAR:?message}`: a problem with that
 * message if unset or empty.
 */
export function interpolate (value: unknown, env: Env, issues: ValidationIssue[]): Interpolated {
  const whole: Interpolated['whole'] = []
  const walk = (node: unknown, at: Array<string | number>): unknown => {
    if (typeof node === 'string') {
      if (!node.includes('$')) return node
      const out = substitute(node, env, (message) => issues.push({ path: formatPath(at), message }))
      if (/^\$\{[^}]*\}$/.test(node)) whole.push(at)
      return out
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, [...at, i]))
    if (node !== null && typeof node === 'object' && Object.getPrototypeOf(node) === Object.prototype) {
      const copy: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(node)) copy[k] = walk(v, [...at, k])
      return copy
    }
    return node
  }
  return { value: walk(value, []), whole }
}

function substitute (text: string, env: Env, problem: (message: string) => void): string {
  // A `${` with no `}` after it would otherwise stay in the value as text.
  const open = text.replace(TOKEN, '').indexOf('${')
  if (open !== -1) {
    const rest = text.replace(TOKEN, '').slice(open)
    problem(`"${rest.length > 40 ? `${rest.slice(0, 40)}…` : rest}" is not closed; expected \${NAME}, \${NAME:-default} or \${NAME:?message} (write $$ for a literal $)`)
  }
  return text.replace(TOKEN, (_match, body: string, inner: string | undefined) => {
    if (body === '$') return '$'
    const m = EXPRESSION.exec(inner ?? '')
    if (m === null) {
      problem(`"\${${inner ?? ''}}" is not a valid expression; expected \${NAME}, \${NAME:-default} or \${NAME:?message}`)
      return ''
    }
    const name = m[1] ?? ''
    const op = m[2]
    const arg = m[3]
    const raw = env[name]
    const unset = raw === undefined
    const empty = unset || raw === ''
    switch (op) {
      case ':-': return empty ? arg ?? '' : raw
      case '-': return unset ? arg ?? '' : raw
      case ':?': case '?':
        if (op === ':?' ? empty : unset) {
          problem(arg === undefined || arg === '' ? `environment variable ${name} is required` : `environment variable ${name} is required: ${arg}`)
          return ''
        }
        return raw as string
      default:
        if (unset) {
          problem(`environment variable ${name} is not set (write \${${name}:-default} to give a default)`)
          return ''
        }
        return raw
    }
  })
}

/** `['servers', 1, 'tls', 'cert']` -> `servers[1].tls.cert` */
export function formatPath (at: ReadonlyArray<string | number>): string {
  let out = ''
  for (const part of at) out += typeof part === 'number' ? `[${part}]` : (out === '' ? part : `.${part}`)
  return out
}
