// `fastify-pool ps | restart | stop | reload`: act on a pool started with
// `fastify-pool start`, through its control API, found through the same
// pool file. Results go to stdout (a table, or JSON with --json), problems
// to stderr, and the exit code says which (see EXIT).
import type { CanaryReport, ListenerStatus, OverloadStatus, ProcessFigures, TrafficFigures } from 'fastify-pool'
import type { ControlActionBody, ControlResult, ControlStatusBody } from 'fastify-pool/control'
import { hasIssues } from 'fastify-pool/errors'
import { displayPath, type FileIssue } from './file-issue.ts'
import { jsonOutput, writeError, writeProblems } from './output.ts'
import { callControl, checkAnswer, controlTarget, ControlError, EXIT, type ControlTarget } from './control-client.ts'

export interface OperateOptions {
  file: string
  command: 'ps' | 'restart' | 'stop' | 'reload' | 'upgrade' | 'canary'
  /** A glob of listener names (or of binds with `bind`). */
  selector?: string
  field?: 'name' | 'bind'
  json: boolean
  /** stop: the control listener too. */
  force?: boolean
  token?: string
  /** ps: refresh every WATCH_MS until SIGINT or SIGTERM. */
  watch?: boolean
  /** upgrade: the node binary of the new process. */
  node?: string
  /** upgrade: how long the new process may take to be ready (ms). */
  timeout?: number
  /** restart, reload: the canary's share, in percent. */
  canary?: number
  /** canary: what to do with the running canary. */
  canaryAction?: 'promote' | 'abort'
}

const WATCH_MS = 2000
// How long `restart` and `stop` wait for the pool's answer (ms).
const ACT_WAIT = 600_000

export async function operate (options: OperateOptions): Promise<number> {
  const shown = displayPath(options.file)
  try {
    const target = await controlTarget(options.file, options.token ?? process.env.FASTIFY_POOL_TOKEN)
    if (options.command === 'ps') return options.watch === true ? await watchPs(target, options.json) : await ps(target, options.json)
    if (options.command === 'reload') return await reload(target, options.json, options.canary)
    if (options.command === 'upgrade') return await upgrade(target, options)
    if (options.command === 'canary') return await endCanary(target, options)
    return await act(target, options.command, options)
  } catch (err) {
    if (err instanceof ControlError) {
      writeError({ code: err.code, message: err.message, file: shown, ...(err.problems === undefined ? {} : { problems: err.problems }) }, `${shown}: ${err.message}`)
      return err.exitCode
    }
    const e = err as Error & { code?: string, errors?: unknown }
    if (e.code === 'FST_POOL_VALIDATE') {
      if (hasIssues<FileIssue>(e)) writeProblems(e.errors, shown)
      else writeError({ code: e.code, message: e.message, file: shown })
      return EXIT.failed
    }
    throw err
  }
}

/** A status answer: its listeners are a list (the rest is read field by field where shown). */
function isStatusBody (body: Record<string, unknown>): body is Record<string, unknown> & ControlStatusBody {
  return Array.isArray(body.listeners)
}

/** An action's answer: a list of results. */
function isActionBody (body: Record<string, unknown>): body is Record<string, unknown> & ControlActionBody {
  return Array.isArray(body.results)
}

async function ps (target: ControlTarget, json: boolean, before = ''): Promise<number> {
  const { status, body } = await callControl(target, 'GET', '')
  checkAnswer(target, status, body)
  if (status !== 200 || !isStatusBody(body)) throw new ControlError(`the pool answered ${status}: ${String(body.error ?? 'not a status')}`, EXIT.failed)
  const answer = body
  if (json) {
    process.stdout.write(`${JSON.stringify(body)}\n`)
    return EXIT.ok
  }
  const colour = process.stdout.isTTY === true && process.env.NO_COLOR === undefined
  const listeners = Array.isArray(answer.workers)
    ? statusTable(answer.workers.flatMap(w => w.listeners.map(l => ({ ...l, worker: `${w.id} (${w.pid ?? '?'})` }))), colour)
    : statusTable(answer.listeners, colour)
  // One write: a refresh in place never shows half a table.
  process.stdout.write(`${before}${listeners}\n${processTable(answer)}`)
  return EXIT.ok
}

/** `ps --watch`: the table again every WATCH_MS, in place on a terminal, until SIGINT or SIGTERM. */
async function watchPs (target: ControlTarget, json: boolean): Promise<number> {
  let stop!: () => void
  const stopped = new Promise<void>(resolve => { stop = resolve })
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  // Clear the screen and go home, on a terminal; elsewhere each table follows the last.
  const clear = !json && process.stdout.isTTY === true ? '\x1b[H\x1b[2J' : ''
  try {
    for (;;) {
      await ps(target, json, clear === '' && !json ? '\n' : clear)
      let timer: NodeJS.Timeout | undefined
      const waited = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), WATCH_MS) })
      const done = await Promise.race([waited, stopped.then(() => true)])
      clearTimeout(timer)
      if (done) return EXIT.ok
    }
  } finally {
    process.removeListener('SIGINT', stop)
    process.removeListener('SIGTERM', stop)
  }
}

async function act (target: ControlTarget, action: 'restart' | 'stop', options: OperateOptions): Promise<number> {
  const query: Record<string, string> = options.selector === undefined ? {} : { [options.field ?? 'name']: options.selector }
  if (options.force === true) query.force = '1'
  if (options.canary !== undefined) query.canary = String(options.canary)
  // A stop drains within the pool's deadline (with workers, each worker's): the pool bounds it, not this client.
  const { status, body } = await callControl(target, 'POST', `/${action}`, query, undefined, ACT_WAIT)
  checkAnswer(target, status, body)
  if (status === 409) throw new ControlError(String(body.error ?? 'refused'), EXIT.failed)
  if (!isActionBody(body)) throw new ControlError(`the pool answered ${status}: ${String(body.error ?? '')}`, status === 400 ? EXIT.usage : EXIT.failed)
  const answer = body
  if (options.json) process.stdout.write(`${JSON.stringify(answer)}\n`)
  else {
    for (const r of answer.results) process.stdout.write(`${resultLine(action, r)}\n`)
    // A worker that could not say what it did (it did not answer in time) is named too.
    for (const w of answer.workers ?? []) if (!w.ok && !answer.results.some(r => r.worker === w.id)) process.stdout.write(`worker ${w.id} (${w.pid ?? '?'}): ${action} failed: ${w.error ?? 'unknown error'}\n`)
  }
  // A canary that was not promoted: the old code serves on, and the exit says so.
  const promoted = answer.results.every(r => r.canary === undefined || r.canary.result === 'promoted')
  return answer.ok && promoted ? EXIT.ok : EXIT.failed
}

/** `canary promote|abort [GLOB]`: end the running canaries the glob selects (all without one). */
async function endCanary (target: ControlTarget, options: OperateOptions): Promise<number> {
  const how = options.canaryAction ?? 'abort'
  const query: Record<string, string> = options.selector === undefined ? {} : { [options.field ?? 'name']: options.selector }
  const { status, body } = await callControl(target, 'POST', `/canary/${how}`, query)
  checkAnswer(target, status, body)
  if (!isActionBody(body)) throw new ControlError(`the pool answered ${status}: ${String(body.error ?? '')}`, status === 400 ? EXIT.usage : EXIT.failed)
  if (status === 404 && body.results.length === 0) throw new ControlError(String(body.error ?? 'no canary runs'), EXIT.noMatch)
  if (options.json) process.stdout.write(`${JSON.stringify(body)}\n`)
  else for (const r of body.results) process.stdout.write(`${r.name} (${r.bind}): ${r.ok ? `canary ${how === 'promote' ? 'promoted' : 'aborted'}` : r.error ?? 'failed'}\n`)
  return body.ok ? EXIT.ok : EXIT.failed
}

/** A canary's verdict in one line: which criterion failed, with both generations' figures. */
function canaryLine (c: CanaryReport): string {
  const figures = (f: CanaryReport['canary']): string => `generation ${f.generation}: ${f.requests} requests, ${f.errorRate === null ? '-' : `${(f.errorRate * 100).toFixed(1)} %`} 5xx, p99 ${f.p99 === null ? '-' : `${f.p99} ms`}`
  const what = c.result === 'promoted' ? 'canary promoted' : c.result === 'rolled-back' ? `canary rolled back on ${c.criterion}: ${c.reason}` : `canary aborted: ${c.reason}`
  return `${what} (canary ${figures(c.canary)}; serving ${figures(c.serving)})`
}

async function reload (target: ControlTarget, json: boolean, canary?: number): Promise<number> {
  const { status, body } = await callControl(target, 'POST', '/reload', canary === undefined ? {} : { canary: String(canary) }, undefined, canary === undefined ? undefined : ACT_WAIT)
  checkAnswer(target, status, body)
  if (status === 200 && json) process.stdout.write(`${JSON.stringify(body)}\n`)
  if (status === 200) {
    const report = body.report as (Record<string, string[]> & { canary?: Record<string, CanaryReport> }) | undefined
    const canaries = Object.entries(report?.canary ?? {})
    if (!json) {
      process.stdout.write(report === undefined
        ? 'reload under way (it replaces the control listener)\n'
        : `reloaded: ${['added', 'removed', 'changed', 'moved', 'unchanged'].map(k => `${k} ${(report[k] ?? []).join(', ') || '-'}`).join('; ')}\n`)
      for (const [name, c] of canaries) process.stdout.write(`${name}: ${canaryLine(c)}\n`)
      const workers = (report as { workers?: { judged?: number, rolling?: boolean, replaced?: boolean } } | undefined)?.workers
      if (workers?.rolling === true) process.stdout.write(`judged in worker ${workers.judged ?? '?'}; every worker is now replaced by a rolling reload (the log says when it is done)\n`)
      if (workers?.replaced !== undefined) process.stdout.write(`worker ${workers.judged ?? '?'} kept part of the reload${workers.replaced ? ' and was replaced from the configuration in force' : ', and could not be replaced (see the log)'}\n`)
    }
    return canaries.every(([, c]) => c.result === 'promoted') ? EXIT.ok : EXIT.failed
  }
  if (status === 400) throw new ControlError(String(body.error ?? 'bad request'), EXIT.usage)
  // An invalid file's problems each name a field (a failed start names listeners instead: its message says it all).
  const named = Array.isArray(body.problems) && body.problems.length > 0 && (body.problems as unknown[]).every(p => typeof (p as { path?: unknown } | null)?.path === 'string')
  const listed = named ? body.problems as Array<{ path?: string, message?: string }> : undefined
  const refused = 'reload refused, still serving the previous configuration'
  if (listed === undefined) throw new ControlError(`${refused}: ${String(body.error ?? status)}`, EXIT.failed)
  // Each problem once: the pool's error message lists them too, so it is not repeated. In JSON they are a field of the one error line; in text they follow it.
  const summary = `${refused}: the file is invalid (${listed.length} problem${listed.length === 1 ? '' : 's'})`
  throw new ControlError(jsonOutput() ? summary : `${summary}:\n${listed.map(p => `  ${p.path ?? ''}: ${p.message ?? ''}`).join('\n')}`, EXIT.failed, listed)
}

/** Replace the process: one line (or one JSON object) once the new one serves, or why not. */
async function upgrade (target: ControlTarget, options: OperateOptions): Promise<number> {
  const body = { ...(options.timeout === undefined ? {} : { timeout: options.timeout }), ...(options.node === undefined ? {} : { node: options.node }) }
  // The answer comes once the new process is ready or has failed (then stopped): allow for its timeout and its stop.
  const wait = (options.timeout ?? 60_000) + 90_000
  const { status, body: answer } = await callControl(target, 'POST', '/upgrade', {}, body, wait)
  checkAnswer(target, status, answer)
  if (status === 200 && answer.ok === true) {
    process.stdout.write(options.json
      ? `${JSON.stringify(answer)}\n`
      : `upgraded: process ${String(answer.pid)} (Node ${String(answer.version)}) serves every listener; process ${String(answer.previous)} drains and exits\n`)
    return EXIT.ok
  }
  // Refused (not now, not here: 409; not possible: 501) is not failed (the successor could not start: 502, or it timed out).
  const outcome = status === 409 || status === 501 ? 'upgrade refused' : 'upgrade failed'
  throw new ControlError(`${outcome}, the running process serves on unchanged: ${String(answer.error ?? status)}`, EXIT.failed)
}

/** One listener's result, with the worker that did it (--workers: every worker acts). */
function resultLine (action: string, r: ControlResult): string {
  const who = `${r.worker === undefined ? '' : `worker ${r.worker}: `}${r.name} (${r.bind})`
  if (!r.ok) return `${who}: ${action} failed: ${r.error ?? 'unknown error'}`
  if (r.pending === true) return `${who}: ${action} under way (it serves the control API)`
  const canary = r.canary === undefined ? '' : `; ${canaryLine(r.canary)}`
  return `${who}: ${r.state}${r.generation > 0 ? `, generation ${r.generation}` : ''}${canary}`
}

/** The `ps` table: one line per listener (per worker and listener with --workers). */
export function statusTable (listeners: Array<ListenerStatus & { worker?: string }>, colour = false): string {
  const workers = listeners.some(l => l.worker !== undefined)
  // Traffic comes with metrics on (the request-duration histogram); without them the columns are left out.
  const traffic = listeners.some(l => l.traffic !== undefined)
  const rows = [[...(workers ? ['WORKER'] : []), 'NAME', 'STATE', 'URL', 'GEN', 'UPTIME', 'INFLIGHT', 'UPGRADED', ...(traffic ? ['REQ/S', '5XX', 'P50', 'P99'] : []), 'SHED', 'CERT EXPIRES', 'LAST ERROR']]
  for (const l of listeners) {
    rows.push([
      ...(workers ? [l.worker ?? '-'] : []),
      l.name,
      l.disabled ? 'disabled' : l.state,
      l.url ?? l.expose ?? l.bind,
      generations(l),
      l.uptime === 0 ? '-' : duration(l.uptime),
      String(l.inflight),
      String(l.upgraded),
      ...(traffic ? trafficCells(l.traffic) : []),
      shedCell(l.overload),
      l.certificate === undefined ? '-' : `${l.certificate.notAfter.slice(0, 10)} (${l.certificate.daysLeft} d)`,
      l.lastError ?? '-'
    ])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map(r => r[i]!.length)))
  const state = workers ? 2 : 1
  return rows.map((r, row) => r.map((cell, i) => {
    const padded = i === r.length - 1 ? cell : cell.padEnd(widths[i]!)
    // Colour after padding, so that the escapes do not count in the widths.
    return colour && row > 0 && i === state ? paint(cell, padded) : padded
  }).join('  ')).join('\n') + '\n'
}

/** Load shedding: off, how many got 503, while it sheds how long the requests it serves waited, and whether new connections wait in the kernel's accept queue. */
export function shedCell (o: OverloadStatus | undefined): string {
  if (o === undefined) return 'off'
  const shed = o.shedding ? `${o.shed} (shedding, waits ${Math.round(o.delay)} ms)` : String(o.shed)
  // connectionsWait is undefined in the status of a process of an earlier version.
  return o.connectionsWait === true ? `${shed} (connections wait ${Math.round(o.acceptWait ?? 0)} ms)` : shed
}

/** Rate, 5xx share and latency, as the table shows them. */
export function trafficCells (t: TrafficFigures | undefined): string[] {
  if (t === undefined) return ['-', '-', '-', '-']
  const ms = (n: number | null): string => n === null ? '-' : n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n)} ms`
  return [t.rate < 10 ? t.rate.toFixed(1) : String(Math.round(t.rate)), t.errorRate === null ? '-' : `${(t.errorRate * 100).toFixed(1)} %`, ms(t.p50), ms(t.p99)]
}

const COLOURS: Record<string, string> = { running: '32', draining: '33', starting: '33', failed: '31', stopped: '2', disabled: '2' }

function paint (state: string, text: string): string {
  const code = COLOURS[state]
  return code === undefined ? text : `\x1b[${code}m${text}\x1b[0m`
}

/** The generation serving, and how many older ones still finish requests or keep upgraded connections. */
function generations (l: ListenerStatus): string {
  // No generation serves a stopped listener: '-', not 0 (the next start numbers its generation after the last one).
  if (l.generation === 0 && l.retiring.length === 0) return '-'
  const canary = l.canary === undefined ? '' : ` (canary ${l.canary.canary.generation}: ${l.canary.share} %, ${Math.ceil(l.canary.left / 1000)} s left)`
  return (l.retiring.length === 0 ? String(l.generation) : `${l.generation} (+${l.retiring.length} retiring)`) + canary
}

/** The processes behind the answer: the pool's, or the primary and each worker; from an older pool, nothing. */
export function processTable (answer: ControlStatusBody): string {
  const rows: Array<[string, ProcessFigures]> = []
  if (Array.isArray(answer.workers)) {
    if (answer.primary !== undefined) rows.push(['primary', answer.primary])
    for (const w of answer.workers) if (w.process !== undefined) rows.push([`worker ${w.id}`, w.process])
  } else if (answer.process !== undefined) {
    rows.push(['pool', answer.process])
  }
  if (rows.length === 0) return ''
  const mib = (bytes: number): string => `${Math.round(bytes / 1048576)} MiB`
  // The start time (UTC, to the second): an upgrade shows as a new pid started later.
  const started = (p: ProcessFigures): string => typeof p.startedAt === 'string' ? p.startedAt.slice(0, 19).replace('T', ' ') : '-'
  const table = [['PROCESS', 'PID', 'NODE', 'STARTED (UTC)', 'UPTIME', 'CPU', 'RSS', 'HEAP', 'LOOP DELAY p99']]
  for (const [name, p] of rows) {
    table.push([name, String(p.pid), p.node, started(p), duration(p.uptime), `${p.cpu.toFixed(1)} %`, mib(p.memory.rss), mib(p.memory.heapUsed), `${p.eventLoopDelay.p99.toFixed(1)} ms`])
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map(r => r[i]!.length)))
  const text = table.map(r => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i]!)).join('  ')).join('\n') + '\n'
  return answer.restarts === undefined ? text : `${text}workers restarted since the start: ${answer.restarts}\n`
}

function duration (ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`
}
