// Applying a new configuration to a live pool by diffing it with the current
// one: unchanged listeners are left alone, changed ones are reconfigured on
// their socket, moved ones start on the new address before the old one
// drains, removed ones drain, added ones start. A failure undoes what was done.
// The pool queues reloads and adopts the outcome; nothing here touches it.
import { bindsOverlap } from './config/address.ts'
import { collectConfig, protocolOf, type NormalizedConfig, type ValidateOptions } from './config/config.ts'
import { optionIssues, ReloadOptionsSchema } from './config/options.ts'
import { FST_POOL_RELOAD, listenerFailures, settle, validationError, type ListenerFailure } from './base/errors.ts'
import { checkHandlers, handlerFor } from './config/handlers.ts'
import { kRenewTls, Listener, type ListenerContext } from './listener/listener.ts'
import type { CanaryReport, Handlers, PoolDefaults, ReloadReport, RestartOptions, StopOptions } from './config/types.ts'

export interface ReloadOptions extends ValidateOptions {
  /** The new handlers (default: keep the current ones). */
  handlers?: Handlers
  /** Drain deadline for listeners that stop or move, in milliseconds (default: the new stopTimeout). */
  timeout?: number
}

/** What to do for one listener name; `next` is the listener that serves it afterwards. */
type Step =
  | { kind: 'add', name: string, config: NormalizedConfig, next: Listener }
  | { kind: 'move', name: string, old: Listener, config: NormalizedConfig, next: Listener }
  | { kind: 'keep', name: string, old: Listener, config: NormalizedConfig, next: Listener }
  | { kind: 'change', name: string, old: Listener, config: NormalizedConfig, next: Listener | undefined }
  | { kind: 'remove', name: string, old: Listener }

type ChangeStep = Extract<Step, { kind: 'change' }>
type Undo = () => Promise<unknown>

/** What the pool adopts once a reload has been applied: reload.ts never touches the pool itself. */
export interface ReloadOutcome {
  report: ReloadReport
  /** The pool's listeners afterwards, in the new configuration's order (removed ones last dropped). */
  listeners: Listener[]
  handlers: Handlers | undefined
  stopTimeout: number
  defaults: PoolDefaults
  baseDir: string | undefined
}

/** The pool's settings a reload starts from. */
export interface ReloadSettings { ctx: ListenerContext, defaults: PoolDefaults, baseDir: string | undefined, metrics: { settings: { listener: string } } | undefined, control: { listener: string } | undefined }

/**
 * Check the new configuration against nothing but itself (FST_POOL_VALIDATE,
 * nothing changed), plan each listener's step, apply the steps with an undo
 * for each, and say what the pool is to adopt. A failure runs the undos in
 * reverse order and rethrows; the pool then keeps what it had.
 */
export async function reload (current: Iterable<Listener>, settings: ReloadSettings, options: ReloadOptions, canary?: RestartOptions['canary']): Promise<ReloadOutcome> {
  const issues = optionIssues(ReloadOptionsSchema, options, '')
  if (options === undefined || issues.some(i => i.path === 'options')) throw validationError(issues.length > 0 ? issues : [{ path: 'options', message: 'must be an object with servers' }])
  const handlers = options.handlers ?? settings.ctx.handlers
  issues.push(...checkHandlers(handlers))
  const baseDir = options.baseDir ?? settings.baseDir
  const configs = collectConfig({ servers: options.servers, defaults: options.defaults, handlers, baseDir }, issues)
  const kept = [
    [settings.metrics?.settings.listener, 'the pool\'s metrics are served there'],
    [settings.control?.listener, 'the control API is served there']
  ] as const
  for (const [name, why] of kept) {
    if (name !== undefined && issues.length === 0 && !configs.some(c => c.name === name)) issues.push({ path: 'servers', message: `must keep the listener "${name}": ${why}` })
  }
  if (issues.length > 0) throw validationError(issues)

  const defaults = options.defaults ?? {}
  const stopTimeout = defaults.stopTimeout ?? settings.ctx.stopTimeout
  const ctx: ListenerContext = { ...settings.ctx, handlers, stopTimeout }
  const listeners = [...current]
  const live = listeners.some(l => l.isRunning)
  const steps = plan(listeners, configs, settings.ctx.handlers, ctx)
  const canaries: Record<string, CanaryReport> = {}
  await apply(steps, { ctx, live, timeout: { timeout: options.timeout ?? stopTimeout }, log: settings.ctx.logger, canary, canaries })

  // Listeners kept as they are re-read their certificate files, which may hold a renewed one.
  for (const s of steps) {
    if (s.kind === 'keep' && s.config.tls !== undefined && s.old.isRunning) {
      await s.old[kRenewTls](s.config).catch((e: unknown) => settings.ctx.logger?.warn({ err: e, listener: s.name }, 'could not re-read certificate'))
    }
  }
  const next = steps.flatMap(s => s.kind !== 'remove' && s.next !== undefined ? [s.next] : [])
  for (const l of next) l.setHandlers(handlers)
  const report: ReloadReport = { added: [], removed: [], changed: [], moved: [], unchanged: [] }
  const key = { add: 'added', remove: 'removed', change: 'changed', move: 'moved', keep: 'unchanged' } as const
  for (const s of steps) report[key[s.kind]].push(s.name)
  if (Object.keys(canaries).length > 0) report.canary = canaries
  // At debug: whoever called reload() has the report (the command logs it once, with the listeners).
  settings.ctx.logger?.debug(report, 'pool reloaded')
  return { report, listeners: next, handlers, stopTimeout, defaults, baseDir }
}

interface Apply { ctx: ListenerContext, live: boolean, timeout: StopOptions, log: ListenerContext['logger'], canary: RestartOptions['canary'], canaries: Record<string, CanaryReport> }

/**
 * Run the steps in phases: start what is new (except where an old listener
 * still holds the address), reconfigure what changed, stop what leaves or
 * moves, then start what waited for an address. Each phase runs in parallel.
 */
async function apply (steps: Step[], { ctx, live, timeout, log, canary, canaries }: Apply): Promise<void> {
  const undo: Undo[] = []
  const failures: ListenerFailure[] = []
  const phase = async <S extends Step> (list: S[], act: (s: S) => Promise<Undo | undefined>): Promise<void> => {
    const { done, failed } = await settle(list, act, s => ({ name: s.name, bind: s.kind === 'remove' ? s.old.bind : s.config.bind }))
    for (const [, u] of done) if (u !== undefined) undo.push(u)
    failures.push(...failed.map(([, f]) => f))
    if (failures.length > 0) throw listenerFailures(FST_POOL_RELOAD, failures)
  }
  const startNew = async (s: Extract<Step, { kind: 'add' | 'move' }>): Promise<Undo | undefined> => {
    if (!live || s.next.config.disabled) return undefined
    await s.next.start()
    return async () => s.next.stop({ timeout: 0 })
  }
  const leaving = steps.flatMap(s => s.kind === 'remove' || s.kind === 'move' ? [s] : [])
  const starting = steps.flatMap(s => s.kind === 'add' || s.kind === 'move' ? [s] : [])
  // Listeners whose address is still held by one that leaves start after it stopped.
  const blocked = new Set(starting.filter(s => leaving.some(l => l.old.isRunning && bindsOverlap(l.old.config.address, s.config.address))))
  try {
    await phase(starting.filter(s => !blocked.has(s)), startNew)
    await phase(steps.flatMap(s => s.kind === 'change' ? [s] : []), s => change(s, ctx, live, timeout, canary, canaries))
    await phase(leaving, async (s) => {
      if (!s.old.isRunning) return undefined
      await s.old.stop(timeout)
      return async () => s.old.start()
    })
    await phase(starting.filter(s => blocked.has(s)), startNew)
  } catch (err) {
    // Undo in reverse order; whatever cannot be undone is logged, the first error is thrown.
    for (const fn of undo.reverse()) {
      await fn().catch((e: unknown) => log?.error({ err: e }, 'reload rollback step failed'))
    }
    throw err
  }
}

/** Match new configs to listeners by name and decide what each one needs. */
function plan (listeners: Listener[], configs: NormalizedConfig[], oldHandlers: Handlers | undefined, ctx: ListenerContext): Step[] {
  const byName = new Map(listeners.map(l => [l.name, l]))
  const steps: Step[] = configs.map((config): Step => {
    const name = config.name
    const old = byName.get(name)
    if (old === undefined) return { kind: 'add', name, config, next: new Listener(config, ctx) }
    if (old.bind !== config.bind) return { kind: 'move', name, old, config, next: new Listener(config, ctx) }
    if (sameConfig(old.config, config) && handlerFor(oldHandlers, old.config.handler) === handlerFor(ctx.handlers, config.handler)) {
      return { kind: 'keep', name, old, config, next: old }
    }
    return { kind: 'change', name, old, config, next: undefined }
  })
  const names = new Set(configs.map(c => c.name))
  for (const old of listeners) if (!names.has(old.name)) steps.push({ kind: 'remove', name: old.name, old })
  return steps
}

/**
 * Same address, new settings: reconfigure() swaps them in on the live socket.
 * What a live socket cannot change (HTTP <-> HTTPS, HTTP/2) and listeners that
 * are not running or are being disabled get a new listener instead, the old
 * one stopped first since the address cannot be bound twice.
 */
async function change (s: ChangeStep, ctx: ListenerContext, live: boolean, timeout: StopOptions, canary?: RestartOptions['canary'], canaries: Record<string, CanaryReport> = {}): Promise<Undo | undefined> {
  const { old, config } = s
  if (!old.isRunning || config.disabled || old.config.disabled || protocolOf(config) !== protocolOf(old.config)) {
    const wasRunning = old.isRunning
    if (wasRunning) await old.stop(timeout)
    const next = new Listener(config, ctx)
    s.next = next
    if ((live || wasRunning) && !config.disabled) {
      try {
        await next.start()
      } catch (err) {
        if (wasRunning) {
          await old.start().catch((again: unknown) => { ctx.logger?.error({ err: again, listener: old.name }, 'reload undone, but the previous listener failed to start again') })
        }
        throw err
      }
    }
    return async () => {
      await next.stop({ timeout: 0 })
      if (wasRunning) await old.start()
    }
  }
  const before = old.config
  const handlers = old.context.handlers
  // The new generation built by reconfigure() takes the new handlers.
  old.setHandlers(ctx.handlers)
  try {
    // With a canary, a running listener's new generation is judged first (canary.ts).
    const done = await old.reconfigure(config, canary === undefined || !old.isRunning ? timeout : { ...timeout, canary })
    if (done.canary !== undefined) {
      canaries[old.name] = done.canary
      // Not promoted: the listener serves its previous configuration, with its previous handlers.
      if (done.canary.result !== 'promoted') {
        old.setHandlers(handlers)
        s.next = old
        return undefined
      }
    }
  } catch (err) {
    old.setHandlers(handlers)
    throw err
  }
  s.next = old
  return async () => {
    old.setHandlers(handlers)
    await old.reconfigure(before, { timeout: 0 })
  }
}

/**
 * Whether a reload leaves a listener's configuration as it was. Compared
 * exactly, as JSON could not: a function (a `fastify.genReqId`, a
 * serializer) is the same only if it is the same object, a Buffer by its
 * bytes, a RegExp by its source and flags; a key whose value is undefined is
 * as good as no key. Where it comes from (`source`, `baseDir`) is not
 * compared: what it resolved to is.
 */
function sameConfig (a: NormalizedConfig, b: NormalizedConfig): boolean {
  const { source: _a, baseDir: _ab, ...left } = a
  const { source: _b, baseDir: _bb, ...right } = b
  return sameValue(left, right, new Map())
}

function sameValue (a: unknown, b: unknown, seen: Map<object, object>): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  // A cycle met again: the pair is being compared further up.
  if (seen.get(a) === b) return true
  seen.set(a, b)
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  if (Buffer.isBuffer(a)) return Buffer.isBuffer(b) && a.equals(b)
  if (a instanceof RegExp) return String(a) === String(b)
  if (a instanceof Date) return a.getTime() === (b as Date).getTime()
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i], seen))
  const keys = (o: object): string[] => Object.keys(o).filter(k => (o as Record<string, unknown>)[k] !== undefined).sort()
  const ka = keys(a)
  const kb = keys(b)
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], seen))
}
