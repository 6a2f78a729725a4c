// Importing the handler modules a pool file names: each path resolved
// against the file (or found as a package from its folder), its default
// export checked to be a Fastify plugin, and imported again only when its
// file changed, so that a reload or --watch serves edited code.
import { execFile } from 'node:child_process'
import { statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, isAbsolute, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Handler, ValidationIssue } from 'fastify-pool'

/**
 * Import every handler module; a problem is an issue at `handlers.<key>`
 * (the key is kept, with an empty plugin, so listeners using it are not
 * also blamed). Returns the plugins by key and the file each came from.
 */
export async function importHandlers (specs: Record<string, unknown>, configFile: string, inline: Record<string, Handler>, issues: ValidationIssue[]): Promise<{ handlers: Record<string, Handler>, modules: Record<string, string> }> {
  const handlers: Record<string, Handler> = { ...inline }
  const modules: Record<string, string> = {}
  await Promise.all(Object.entries(specs).map(async ([key, spec]) => {
    if (typeof spec !== 'string' || spec === '') return // reported by the schema
    const got = await importHandler(spec, configFile)
    if ('problem' in got) {
      issues.push({ path: `handlers.${key}`, message: got.problem })
      handlers[key] = async () => {}
    } else {
      handlers[key] = got.handler
      modules[key] = got.file
    }
  }))
  return { handlers, modules }
}

/**
 * The URL a handler module is imported from: the file as it is on disk now.
 * Unchanged, it is the same URL, so the same module and the same plugin (a
 * reload leaves its listeners alone); edited, it is a new one (a reload or
 * --watch serves the new code). A CommonJS module is cached by its path, so
 * its cache entry goes when the file changed.
 */
const seen = new Map<string, number>()
function moduleUrl (file: string): string {
  let mtime = 0
  try { mtime = statSync(file).mtimeMs } catch {}
  const before = seen.get(file)
  if (before !== undefined && before !== mtime) {
    const cache = createRequire(file).cache
    if (cache !== undefined) Reflect.deleteProperty(cache, file)
  }
  seen.set(file, mtime)
  const url = pathToFileURL(file)
  if (mtime !== 0) url.searchParams.set('mtime', String(mtime))
  return url.href
}

async function importHandler (spec: string, configFile: string): Promise<{ handler: Handler, file: string } | { problem: string }> {
  let file: string
  if (spec.startsWith('.') || isAbsolute(spec)) {
    file = resolve(dirname(configFile), spec)
  } else {
    // A package name: found from the config file's folder, as Node would from a module there.
    try {
      file = createRequire(configFile).resolve(spec)
    } catch {
      return { problem: `module "${spec}" not found from ${dirname(configFile)}` }
    }
  }
  let mod: { default?: unknown }
  try {
    mod = await import(moduleUrl(file))
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(file)) return { problem: `module not found: ${file}` }
    const typescript = typeScriptAdvice(e, file)
    if (typescript !== undefined) return { problem: typescript }
    const where = await errorPosition(e, file)
    return { problem: `cannot import ${where ?? file}: ${e.name === 'SyntaxError' ? 'SyntaxError: ' : ''}${e.message.split('\n')[0]}` }
  }
  let plugin = mod.default
  // A CommonJS module compiled from `export default` nests it once more.
  if (plugin !== null && typeof plugin === 'object' && typeof (plugin as { default?: unknown }).default === 'function') plugin = (plugin as { default: unknown }).default
  if (typeof plugin !== 'function') {
    return { problem: `${file} must export a Fastify plugin as default (got ${plugin === undefined ? 'no default export' : typeof plugin})` }
  }
  return { handler: plugin as Handler, file }
}

/**
 * A TypeScript handler module that this Node cannot import, in one line that
 * says how to make it work: Node 22.18+, 23.6+ and later strip types by
 * default (22.6+ with --experimental-strip-types); an older one needs tsx
 * (as the source checkout runs), or the module compiled to JavaScript.
 */
export function typeScriptAdvice (err: NodeJS.ErrnoException, file: string): string | undefined {
  if (err.code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !/\.[cm]?ts$/.test(file)) return undefined
  return `cannot import ${file}: Node ${process.version} does not run TypeScript by itself; run the command on Node 22.18+ or 23.6+ (they strip types), through tsx (node --import tsx node_modules/fastify-pool-cli/bin/fastify-pool.js start), or compile the module to JavaScript`
}

/**
 * Where an import failed, as `file:line:column`: for an error thrown while the
 * module ran, its first stack frame in a file; for a syntax error (whose
 * stack names no position in ESM), what `node --check` says of the module.
 */
async function errorPosition (err: Error, file: string): Promise<string | undefined> {
  if (err.name !== 'SyntaxError') {
    const frame = /\(?(file:\/\/[^\s)]+?):(\d+):(\d+)\)?/.exec(err.stack ?? '')
    return frame === null ? undefined : `${fileURLToPath(frame[1] as string)}:${frame[2] ?? ''}:${frame[3] ?? ''}`
  }
  if (!/\.(m|c)?js$/.test(file)) return undefined
  const report = await new Promise<string>(resolve => {
    execFile(process.execPath, ['--check', file], { timeout: 5000 }, (_err, _stdout, stderr) => resolve(stderr))
  })
  // `FILE:LINE`, the source line, then carets under the offending part.
  const lines = report.split('\n')
  const at = lines.findIndex(l => l.startsWith(`${file}:`))
  const line = at === -1 ? undefined : /:(\d+)$/.exec(lines[at] as string)?.[1]
  if (line === undefined) return undefined
  const caret = lines[at + 2]?.indexOf('^') ?? -1
  return `${file}:${line}${caret >= 0 ? `:${caret + 1}` : ''}`
}
