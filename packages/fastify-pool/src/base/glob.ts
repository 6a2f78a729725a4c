// Globs that select listeners, matched without regular expressions. A glob
// can come from outside (the control API's ?name=, a command's argument), and
// a regular expression compiled from one can take exponential time: picomatch
// turned the extglob `+(*)z` into one that froze the process for seconds.
// Here a glob is a list of tokens matched with one backtrack point per `*`
// (the classic wildcard algorithm), so matching takes at most name length ×
// glob length steps, and a glob's size is bounded before it is compiled.
//
// Syntax: `*` any run of characters (slashes too: binds and URLs have them),
// `?` one character, `[abc]`, `[a-z]` and `[!a-z]` (or `[^a-z]`) one character
// of a set (brackets around a colon are literal: `[::1]:8080` is a bind),
// `{a,b}` alternatives (nested, GLOB_LIMITS.alternatives at most in
// all), `\` escapes the next character. Anything else, extglob syntax such as
// `+(a|b)` included, is literal. Matching ignores case.
import { FST_POOL_GLOB } from './errors.ts'

export const GLOB_LIMITS = {
  /** Characters in one glob. */
  length: 256,
  /** Alternatives its braces expand to, in all. */
  alternatives: 64
} as const

type Token =
  | { kind: 'star' }
  | { kind: 'one' }
  | { kind: 'char', char: string }
  | { kind: 'set', negate: boolean, ranges: Array<[string, string]> }

/** A predicate for `glob`; throws FST_POOL_GLOB for a glob past the limits. */
export function compileGlob (glob: string): (value: string) => boolean {
  if (glob.length > GLOB_LIMITS.length) {
    throw new FST_POOL_GLOB(`it is ${glob.length} characters long, and at most ${GLOB_LIMITS.length} are allowed`)
  }
  const alternatives = expandBraces(glob.toLowerCase()).map(tokenize)
  return (value) => {
    const lower = value.toLowerCase()
    return alternatives.some(tokens => matchTokens(tokens, lower))
  }
}

/** `a{b,c{d,e}}` → ['ab', 'acd', 'ace']; an unclosed `{` (or one without a comma) is literal. */
function expandBraces (glob: string): string[] {
  const open = findBrace(glob)
  if (open === undefined) return [glob]
  const { start, end, parts } = open
  const head = glob.slice(0, start)
  const tails = expandBraces(glob.slice(end + 1))
  const out: string[] = []
  for (const part of parts) {
    for (const middle of expandBraces(part)) {
      for (const tail of tails) {
        out.push(head + middle + tail)
        if (out.length > GLOB_LIMITS.alternatives) {
          throw new FST_POOL_GLOB(`its braces expand to more than ${GLOB_LIMITS.alternatives} alternatives`)
        }
      }
    }
  }
  return out
}

/** The first `{…,…}` group at depth 0, split at its top-level commas. */
function findBrace (glob: string): { start: number, end: number, parts: string[] } | undefined {
  for (let start = 0; start < glob.length; start++) {
    const c = glob[start]
    if (c === '\\') { start++; continue }
    if (c !== '{') continue
    let depth = 0
    let from = start + 1
    const parts: string[] = []
    for (let i = start; i < glob.length; i++) {
      const d = glob[i]
      if (d === '\\') { i++; continue }
      if (d === '{') depth++
      else if (d === '}' && --depth === 0) {
        parts.push(glob.slice(from, i))
        if (parts.length > 1) return { start, end: i, parts }
        break
      } else if (d === ',' && depth === 1) { parts.push(glob.slice(from, i)); from = i + 1 }
    }
  }
  return undefined
}

function tokenize (glob: string): Token[] {
  const tokens: Token[] = []
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string
    if (c === '*') {
      // `**` is `*`: consecutive stars add nothing but backtracking.
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' })
    } else if (c === '?') tokens.push({ kind: 'one' })
    else if (c === '\\' && i + 1 < glob.length) tokens.push({ kind: 'char', char: glob[++i] as string })
    else if (c === '[') {
      // `[::1]:8080` is an IPv6 bind, not a set: brackets around a colon are literal.
      const set = readSet(glob, i)
      if (set !== undefined && glob.slice(i, set.end).includes(':')) { tokens.push({ kind: 'char', char: c }); continue }
      if (set === undefined) tokens.push({ kind: 'char', char: c })
      else { tokens.push(set.token); i = set.end }
    } else tokens.push({ kind: 'char', char: c })
  }
  return tokens
}

/** `[…]` starting at `start`, or undefined when it does not close (then `[` is literal). */
function readSet (glob: string, start: number): { token: Token, end: number } | undefined {
  let i = start + 1
  const negate = glob[i] === '!' || glob[i] === '^'
  if (negate) i++
  const ranges: Array<[string, string]> = []
  // A `]` right after the opening is a member, as in POSIX.
  for (let first = true; i < glob.length; i++, first = false) {
    let c = glob[i] as string
    if (c === ']' && !first) return { token: { kind: 'set', negate, ranges }, end: i }
    if (c === '\\' && i + 1 < glob.length) c = glob[++i] as string
    if (glob[i + 1] === '-' && i + 2 < glob.length && glob[i + 2] !== ']') {
      ranges.push([c, glob[i + 2] as string])
      i += 2
    } else ranges.push([c, c])
  }
  return undefined
}

function matchOne (token: Token, c: string): boolean {
  switch (token.kind) {
    case 'one': return true
    case 'char': return token.char === c
    case 'set': return token.ranges.some(([lo, hi]) => c >= lo && c <= hi) !== token.negate
    default: return false
  }
}

/** Wildcard matching with one backtrack point: on a mismatch, the last `*` takes one more character. */
function matchTokens (tokens: Token[], value: string): boolean {
  let t = 0
  let v = 0
  let star = -1
  let starFrom = 0
  while (v < value.length) {
    const token = tokens[t]
    if (token !== undefined && token.kind === 'star') {
      star = t++
      starFrom = v
    } else if (token !== undefined && matchOne(token, value[v] as string)) {
      t++
      v++
    } else if (star >= 0) {
      t = star + 1
      v = ++starFrom
    } else return false
  }
  while (tokens[t]?.kind === 'star') t++
  return t === tokens.length
}
