// A problem with a pool file, and how it is shown: small on purpose, so that
// every command can report problems without loading the library.
import { isAbsolute, relative } from 'node:path'

/** One problem of a pool file: where (its field path, and line:column for syntax errors) and what. */
export interface FileIssue {
  file: string
  path: string
  message: string
  /** 1-based position, for syntax errors. */
  line?: number
  column?: number
}

/** `pool.yaml: servers[1].tls.cert: message`, or `pool.yaml:3:5: message` for syntax errors. */
export function formatIssue (issue: FileIssue, shown = issue.file): string {
  const where = issue.line === undefined ? shown : `${shown}:${issue.line}:${issue.column ?? 1}`
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`
}

/** A path relative to cwd when it is inside it, else absolute. */
export function displayPath (file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file)
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? file : rel
}
