// Reading a pool file into a plain document: YAML and JSON parsed with
// line and column positions, a JS config imported, `${VAR}` interpolated.
// No validation and nothing of the library but its error codes: the commands
// that only find the running pool (ps, restart, stop, reload) load this
// module alone, and must work while the file holds an edit that does not
// validate yet.
import { readFile } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { FST_POOL_VALIDATE } from 'fastify-pool/errors'
import { LineCounter, parseDocument } from 'yaml'
import { displayPath, formatIssue, type FileIssue } from './file-issue.ts'
import { interpolate, type Env, type Interpolated } from './interpolate.ts'

export interface DocumentOptions {
  /** Variables for `${VAR}` expressions (default: process.env). */
  env?: Env
  /** Folder a relative `file` is resolved against (default: the working directory). */
  cwd?: string
  /** Turn the strings that were one whole `${VAR}` into the numbers or booleans the schema wants (config-file.ts). */
  convert?: (doc: Record<string, unknown>, whole: Interpolated['whole']) => Record<string, unknown>
  /** The file's text, read before (YAML and JSON): the file is not read again. */
  text?: string
}

interface Issue { path: string, message: string, line?: number, column?: number }

export const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json', '.js', '.mjs', '.cjs'] as const

// JS config modules are re-imported on every load (a reload must see edits);
// a query string is the only way past the ESM cache. Handler modules are
// re-imported when their file changed (see moduleUrl).
let generation = 0

/**
 * Read and interpolate a pool file, checking nothing else and importing
 * nothing: for the commands that only need to find the running pool (they
 * must work while the file holds an edit that does not validate yet).
 */
export async function readDocument (file: string, options: DocumentOptions = {}): Promise<{ file: string, doc: Record<string, unknown> }> {
  const cwd = options.cwd ?? process.cwd()
  const path = resolve(cwd, file)
  const read = await interpolatedDocument(path, cwd, options)
  if (read.issues.length > 0) throw fileError(path, cwd, read.issues)
  const { handlers: _handlers, ...doc } = read.doc
  return { file: path, doc: options.convert === undefined ? doc : options.convert(doc, read.whole) }
}

/** A pool file parsed and interpolated, as both readers take it (readDocument here, loadConfigFile in config-file.ts). */
export interface Interpolation {
  /** The document with every `${VAR}` replaced; `handlers` holds the module paths (a JS config's functions are in `functions`). */
  doc: Record<string, unknown>
  /** Handlers a JS config gives as functions: kept out of interpolation and of the schema, which speaks of module paths. */
  functions: Record<string, unknown>
  /** The paths of values that were one whole `${VAR}` (see DocumentOptions.convert). */
  whole: Interpolated['whole']
  /** Problems in `${...}` expressions, with their line and column. */
  issues: Issue[]
  /** The text that was parsed (YAML and JSON). */
  text: string | undefined
}

/** Parse and interpolate; throws FST_POOL_VALIDATE for a file that cannot be read or parsed, or holds no object. */
export async function interpolatedDocument (path: string, cwd: string, options: Pick<DocumentOptions, 'env' | 'text'> = {}): Promise<Interpolation> {
  let text: string | undefined
  const { raw, locate } = await parse(path, options.text, read => { text = read }).catch((err: Error & { issues?: Array<Omit<FileIssue, 'file'>> }) => { throw fileError(path, cwd, err.issues ?? [{ path: '', message: err.message }]) })
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw fileError(path, cwd, [{ path: '', message: `must contain an object with a "servers" list (got ${raw === null || raw === undefined ? 'nothing' : Array.isArray(raw) ? 'a list' : typeof raw})` }])
  }
  const { handlers, ...rest } = raw as Record<string, unknown>
  const functions: Record<string, unknown> = {}
  let paths: unknown = handlers
  if (handlers !== null && typeof handlers === 'object' && !Array.isArray(handlers)) {
    const only: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(handlers)) {
      if (typeof value === 'function') functions[key] = value
      else only[key] = value
    }
    paths = only
  }
  const issues: Issue[] = []
  const { value, whole } = interpolate({ ...rest, ...(paths === undefined ? {} : { handlers: paths }) }, options.env ?? process.env, issues)
  return { doc: value as Record<string, unknown>, functions, whole, issues: located(issues, 0, locate), text }
}

/**
 * The text of a YAML or JSON pool file, read once for every step of a start
 * that needs it (the workers' count, the development certificates, the
 * pool). Undefined for a JS config (imported, not read) and for a file that
 * cannot be read (loading it reports why).
 */
export async function readText (file: string, cwd = process.cwd()): Promise<string | undefined> {
  const ext = extname(file).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') return undefined
  return await readFile(resolve(cwd, file), 'utf8').catch(() => undefined)
}

export type Locate = (path: string) => { line: number, column: number } | undefined
const nowhere: Locate = () => undefined

export async function parse (path: string, given?: string, onText?: (text: string) => void): Promise<{ raw: unknown, locate: Locate }> {
  const ext = extname(path).toLowerCase()
  if (!(CONFIG_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new Error(`unsupported file type "${ext || '(none)'}"; expected ${CONFIG_EXTENSIONS.join(', ')}`)
  }
  if (ext === '.js' || ext === '.mjs' || ext === '.cjs') {
    const url = pathToFileURL(path)
    url.searchParams.set('load', String(++generation))
    let mod: { default?: unknown }
    try {
      mod = await import(url.href)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw new Error(e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(path) ? 'file not found' : `cannot be imported: ${e.message}`)
    }
    if (mod.default === undefined) throw new Error('has no default export; export the configuration object as default')
    return { raw: mod.default, locate: nowhere }
  }
  let text: string
  try {
    text = given ?? await readFile(path, 'utf8')
    onText?.(text)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new Error(code === 'ENOENT' ? 'file not found' : `cannot be read: ${(err as Error).message}`)
  }
  // JSON is read by the YAML parser too (YAML 1.2 contains it) for the same line and column reports.
  const lines = new LineCounter()
  const doc = parseDocument(text, { prettyErrors: true, lineCounter: lines })
  if (doc.errors.length > 0) {
    const issues = doc.errors.map(e => ({
      path: '',
      message: `${ext === '.json' ? 'JSON' : 'YAML'} syntax error: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      line: e.linePos?.[0].line,
      column: e.linePos?.[0].col
    }))
    throw Object.assign(new Error(issues[0]?.message), { issues })
  }
  const locate: Locate = (at) => {
    const node = doc.getIn(pathKeys(at), true) as { range?: [number, number, number] } | undefined
    if (node?.range === undefined) return undefined
    const { line, col } = lines.linePos(node.range[0])
    return { line, column: col }
  }
  return { raw: doc.toJS(), locate }
}

/** `servers[1].tls.cert` -> `['servers', 1, 'tls', 'cert']` */
function pathKeys (at: string): Array<string | number> {
  return [...at.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map(m => m[2] === undefined ? m[1] as string : Number(m[2]))
}

/** Problems found in the values (a `${...}` that is wrong, say) with the line and column of their value. */
export function located (issues: readonly Issue[], from: number, locate: Locate): Issue[] {
  return issues.map((issue, i) => i < from ? issue : { ...issue, ...locate(issue.path) })
}

/** The FST_POOL_VALIDATE error for a file: each line reads `file: path: message`. */
export function fileError (file: string, cwd: string, issues: Array<Omit<FileIssue, 'file'>>): Error & { errors: FileIssue[], file: string } {
  const shown = displayPath(file, cwd)
  const list: FileIssue[] = issues.map(i => ({ ...i, file }))
  const text = list.map(i => `  - ${formatIssue(i, shown)}`).join('\n')
  return Object.assign(new FST_POOL_VALIDATE(text), { errors: list, file })
}
