// What the command writes besides its log: problems with a file, errors, and
// one-line results. For people, text; with --json (the default of `start`
// when stdout is not a terminal), one JSON object per line on stdout and on
// stderr alike, so that a script or a log collector can parse every line.
//
// An error line has a stable shape:
//   { "level": "error", "code": "FST_POOL_VALIDATE", "message": "...",
//     "file"?, "path"?, "line"?, "column"?, "listener"?, "bind"?, "cause"? }
// `cause` is the code of what caused it (EADDRINUSE), when it has one.
import { formatIssue, type FileIssue } from './file-issue.ts'

export interface ErrorLine {
  code: string
  message: string
  file?: string
  path?: string
  line?: number
  column?: number
  listener?: string
  bind?: string
  cause?: string
  /** With --verbose, for an unexpected error. */
  stack?: string
  /** A refused reload: the problems the pool named. */
  problems?: Array<{ path?: string, message?: string }>
}

let json = false

/** From here on, write JSON lines (true) or text (false). */
export function useJson (on: boolean): void { json = on }

/** True while the command writes JSON lines. */
export function jsonOutput (): boolean { return json }

// pino's number for error: an error line is shaped like every line of the log (`level`, `time`, `msg`), so one parser reads both streams.
const ERROR_LEVEL = 50

/** An error as a JSON line of the log's shape, with its fields. */
function errorJson (fields: ErrorLine | (Record<string, unknown> & { message: string })): string {
  return `${JSON.stringify({ level: ERROR_LEVEL, time: Date.now(), msg: fields.message, ...fields })}\n`
}

/** One error: a JSON line, or `text` (default: the message) for people; on stderr. */
export function writeError (line: ErrorLine, text = line.message): void {
  process.stderr.write(json ? errorJson(line) : `${text}\n`)
}

/** Every problem of a file, then a summary (`nothing was started`, say). */
export function writeProblems (issues: readonly FileIssue[], shown: string, after = ''): void {
  for (const issue of issues) {
    writeError({
      code: 'FST_POOL_VALIDATE',
      message: issue.message,
      file: shown,
      ...(issue.path === '' ? {} : { path: issue.path }),
      ...(issue.line === undefined ? {} : { line: issue.line, column: issue.column ?? 1 })
    }, formatIssue(issue, shown))
  }
  const summary = `${shown}: ${issues.length} problem${issues.length === 1 ? '' : 's'}${after === '' ? '' : `; ${after}`}`
  process.stderr.write(json ? errorJson({ code: 'FST_POOL_VALIDATE', message: summary, file: shown, problems: issues.length }) : `${summary}\n`)
}

/** The code of an error's cause, as Node gives it (`EADDRINUSE`). */
export function causeCode (err: unknown): string | undefined {
  let e = err as { code?: unknown, cause?: unknown } | undefined
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (typeof e.code === 'string' && !e.code.startsWith('FST_')) return e.code
    e = e.cause as typeof e
  }
  return undefined
}
