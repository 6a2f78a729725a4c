// Applying a new configuration to a live pool by diffing it with the current
// one: unchanged listeners are left alone, changed ones are reconfigured on
// their socket, moved ones start on the new address before the old one
// drains, removed ones drain, added ones start. A failure undoes what was done.
import { bindsOverlap } from './address.ts'
import { collectConfig, protocolOf, type NormalizedConfig, type PoolDefaults, type ValidateOptions } from './config.ts'
import { failureOf, FST_POOL_RELOAD, listenerFailures, validationError, type ListenerFailure } from './errors.ts'
import { checkHandlers, handlerFor } from './handlers.ts'
import { Listener, type ListenerContext } from './listener.ts'
import type { Handlers, StopOptions } from './types.ts'

export interface ReloadOptions extends ValidateOptions {
  /** The new handlers (default: keep the current ones). */
  handlers?: Handlers
  /** Drain deadline for listeners that stop or move, in milliseconds (default: the new stopTimeout). */
  timeout?: number
}

/** What a reload did, by listener name. */
export interface ReloadReport {
  /** New listeners, started. */
  added: string[]
  /** Listeners no longer configured, drained and stopped. */
  removed: string[]
  /** Same address, new settings or handler: reconfigured on their socket. */
  changed: string[]
  /** New address: started there, then the old one drained. */
  moved: string[]
  /** Left alone (certificate files are re-read, so a renewed certificate is served). */
  unchanged: string[]
}

/** The parts of a pool a reload works on; pool.ts hands them over. */
export interface ReloadTarget {
  listeners: Map<string, Listener>
  settings: { ctx: ListenerContext, defaults: PoolDefaults, baseDir: string | undefined }
}

interface Step {
  kind: 'add' | 'move' | 'change' | 'remove' | 'keep'
  name: string
  old: Listener | undefined
  config: NormalizedConfig | undefined
  /** The listener that serves this name after the reload. */
  next: Listener | undefined
}

// One reload at a time per pool: each diffs against what the previous one left.
const queues = new WeakMap<object, Promise<unknown>>()

export function reloadPool (target: ReloadTarget, options: ReloadOptions): Promise<ReloadReport> {
  const tail = queues.get(target.listeners) ?? Promise.resolve()
  const run = tail.then(() => reload(target, options))
  queues.set(target.listeners, run.catch(() => {}))
  return run
}

async function reload (target: ReloadTarget, options: ReloadOptions): Promise<ReloadReport> {
  if (typeof options !== 'object' || options === null) throw validationError([{ path: 'options', message: 'must be an object with servers' }])
  const { listeners, settings } = target
  const handlers = options.handlers ?? settings.ctx.handlers
  const issues = checkHandlers(handlers)
  const configs = collectConfig({ servers: options.servers, defaults: options.defaults, handlers, baseDir: options.baseDir ?? settings.baseDir }, issues)
  if (issues.length > 0) throw validationError(issues)

  const defaults = options.defaults ?? {}
  const stopTimeout = defaults.stopTimeout ?? settings.ctx.stopTimeout
  const timeout: StopOptions = { timeout: options.timeout ?? stopTimeout }
  const ctx: ListenerContext = { ...settings.ctx, handlers, stopTimeout }
  const live = [...listeners.values()].some(l => l.isRunning)
  const steps = plan(listeners, configs, settings.ctx.handlers, handlers, ctx)

  const undo: Array<() => Promise<unknown>> = []
  const failures: ListenerFailure[] = []
  const attempt = async (list: Step[], act: (s: Step) => Promise<(() => Promise<unknown>) | undefined>): Promise<void> => {
    const results = await Promise.allSettled(list.map(act))
    results.forEach((r, i) => {
      const s = list[i] as Step
      if (r.status === 'fulfilled') { if (r.value !== undefined) undo.push(r.value) } else failures.push(failureOf(s.name, s.config?.bind ?? s.old?.bind ?? '', r.reason))
    })
    if (failures.length > 0) throw listenerFailures(FST_POOL_RELOAD, failures)
  }
  const startNew = async (s: Step): Promise<(() => Promise<unknown>) | undefined> => {
    const next = s.next as Listener
    if (!live || next.config.disabled) return undefined
    await next.start()
    return async () => next.stop({ timeout: 0 })
  }
  // Listeners whose old address is still held until the stop phase start after it.
  const leaving = steps.filter(s => s.kind === 'remove' || s.kind === 'move').map(s => s.old as Listener)
  const starting = steps.filter(s => s.kind === 'add' || s.kind === 'move')
  const blocked = new Set(starting.filter(s => leaving.some(l => l.isRunning && bindsOverlap(l.config.address, (s.config as NormalizedConfig).address))))

  try {
    await attempt(starting.filter(s => !blocked.has(s)), startNew)
    await attempt(steps.filter(s => s.kind === 'change'), s => change(s, ctx, live, timeout))
    await attempt(steps.filter(s => s.kind === 'remove' || s.kind === 'move'), async (s) => {
      const old = s.old as Listener
      if (!old.isRunning) return undefined
      await old.stop(timeout)
      return async () => old.start()
    })
    await attempt(starting.filter(s => blocked.has(s)), startNew)
  } catch (err) {
    // Undo in reverse order; whatever cannot be undone is logged, the first error is thrown.
    for (const fn of undo.reverse()) {
      await fn().catch((e: unknown) => settings.ctx.logger?.error({ err: e }, 'reload rollback step failed'))
    }
    throw err
  }

  for (const s of steps) {
    if (s.kind === 'keep' && s.config?.tls !== undefined && s.old?.isRunning === true) {
      // Same paths may hold a renewed certificate: serve what the files hold now.
      await s.old.setTls(s.config.tls).catch((e: unknown) => settings.ctx.logger?.warn({ err: e, listener: s.name }, 'could not re-read certificate'))
    }
  }
  listeners.clear()
  for (const s of steps) if (s.next !== undefined) listeners.set(s.name, s.next)
  for (const l of listeners.values()) l.setHandlers(handlers)
  settings.ctx.handlers = handlers
  settings.ctx.stopTimeout = stopTimeout
  settings.defaults = defaults
  if (options.baseDir !== undefined) settings.baseDir = options.baseDir

  const report: ReloadReport = { added: [], removed: [], changed: [], moved: [], unchanged: [] }
  const key = { add: 'added', remove: 'removed', change: 'changed', move: 'moved', keep: 'unchanged' } as const
  for (const s of steps) report[key[s.kind]].push(s.name)
  settings.ctx.logger?.info(report, 'pool reloaded')
  return report
}

/** Match new configs to listeners by name and decide what each one needs. */
function plan (listeners: Map<string, Listener>, configs: NormalizedConfig[], oldHandlers: Handlers | undefined, handlers: Handlers | undefined, ctx: ListenerContext): Step[] {
  const steps: Step[] = []
  for (const config of configs) {
    const old = listeners.get(config.name)
    if (old === undefined) {
      steps.push({ kind: 'add', name: config.name, old, config, next: new Listener(config, ctx) })
    } else if (old.bind !== config.bind) {
      steps.push({ kind: 'move', name: config.name, old, config, next: new Listener(config, ctx) })
    } else if (sameConfig(old.config, config) && handlerFor(oldHandlers, old.config.handler) === handlerFor(handlers, config.handler)) {
      steps.push({ kind: 'keep', name: config.name, old, config, next: old })
    } else {
      steps.push({ kind: 'change', name: config.name, old, config, next: undefined })
    }
  }
  const names = new Set(configs.map(c => c.name))
  for (const old of listeners.values()) {
    if (!names.has(old.name)) steps.push({ kind: 'remove', name: old.name, old, config: undefined, next: undefined })
  }
  return steps
}

/**
 * Same address, new settings: reconfigure() swaps them in on the live socket.
 * What a live socket cannot change (HTTP <-> HTTPS, HTTP/2) and listeners that
 * are not running or are being disabled get a new listener instead, the old
 * one stopped first since the address cannot be bound twice.
 */
async function change (s: Step, ctx: ListenerContext, live: boolean, timeout: StopOptions): Promise<(() => Promise<unknown>) | undefined> {
  const old = s.old as Listener
  const config = s.config as NormalizedConfig
  if (!old.isRunning || config.disabled || old.config.disabled || protocolOf(config) !== protocolOf(old.config)) {
    const wasRunning = old.isRunning
    if (wasRunning) await old.stop(timeout)
    const next = new Listener(config, ctx)
    s.next = next
    if ((live || wasRunning) && !config.disabled) {
      try {
        await next.start()
      } catch (err) {
        if (wasRunning) await old.start().catch(() => {})
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
    await old.reconfigure(config, timeout)
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

function sameConfig (a: NormalizedConfig, b: NormalizedConfig): boolean {
  const { source: _a, baseDir: _ab, ...left } = a
  const { source: _b, baseDir: _bb, ...right } = b
  return JSON.stringify(left) === JSON.stringify(right)
}
