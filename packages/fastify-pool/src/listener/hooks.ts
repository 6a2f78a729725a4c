// The pool's lifecycle hooks: the seam that metrics, the control API and
// any user's part (a tracer, a health policy) build on. Two hooks take part
// in building a generation (its Fastify options, then its instance, before
// its routes); the others are told what happened (a swap, a retirement, a
// cut, a state change, a reload). A building hook that throws fails the
// build (a restart keeps the serving generation); a hook that is only told
// cannot undo anything, so what it throws is logged and the others run on.
// The diagnostics channels (state.ts) publish the same events outwards.
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify'
import { FST_POOL_INVALID_ARGUMENT } from '../base/errors.ts'
import { didYouMean } from '../base/suggest.ts'
import type { BuildInfo, HookName, HookRunner, PoolHooks, TellHookName } from '../config/types.ts'

export type { BuildInfo, HookName, HooksOption, PoolHooks, RetireEvent } from '../config/types.ts'

export const HOOK_NAMES: readonly HookName[] = Object.freeze(['onOptions', 'onBuild', 'onSwap', 'onRetire', 'onCut', 'onStateChange', 'onReload', 'onCanary'])

/** Problems of a `hooks` option, for resolvePoolOptions(). */
export function hooksIssues (option: unknown): Array<{ path: string, message: string }> {
  if (option === undefined) return []
  if (typeof option !== 'object' || option === null || Array.isArray(option)) return [{ path: 'hooks', message: `must be an object of hook name -> function or array of functions (got ${Array.isArray(option) ? 'an array' : typeof option})` }]
  const issues: Array<{ path: string, message: string }> = []
  for (const [name, value] of Object.entries(option)) {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) {
      issues.push({ path: `hooks.${name}`, message: `is not a hook${didYouMean(name, HOOK_NAMES)} (hooks: ${HOOK_NAMES.join(', ')})` })
      continue
    }
    const fns: unknown[] = Array.isArray(value) ? value : [value]
    if (fns.some(fn => typeof fn !== 'function')) issues.push({ path: `hooks.${name}`, message: 'must be a function or an array of functions' })
  }
  return issues
}

/** The hooks of a pool (shared by its selections; a clone copies them). */
export class Hooks implements HookRunner {
  readonly #fns = new Map<HookName, Function[]>()

  copy (): Hooks {
    const copy = new Hooks()
    for (const [name, fns] of this.#fns) copy.#fns.set(name, [...fns])
    return copy
  }

  /** Add the hooks of a `hooks` option (checked by hooksIssues()). */
  addAll (option: Partial<Record<HookName, Function | Function[]>> | undefined): void {
    for (const name of HOOK_NAMES) {
      const given = option?.[name]
      if (given === undefined) continue
      for (const fn of Array.isArray(given) ? given : [given]) this.add(name, fn)
    }
  }

  add (name: HookName, fn: Function): void {
    if (!(HOOK_NAMES as readonly string[]).includes(name)) throw new FST_POOL_INVALID_ARGUMENT(`addHook(): "${String(name)}" is not a hook${didYouMean(String(name), HOOK_NAMES)} (hooks: ${HOOK_NAMES.join(', ')})`)
    if (typeof fn !== 'function') throw new FST_POOL_INVALID_ARGUMENT(`addHook("${name}", fn): fn must be a function, got ${fn === null ? 'null' : typeof fn}`)
    const fns = this.#fns.get(name)
    if (fns === undefined) this.#fns.set(name, [fn])
    else fns.push(fn)
  }

  has (name: HookName): boolean { return (this.#fns.get(name)?.length ?? 0) > 0 }

  /** Run the building hook onOptions: each gets what the one before returned. */
  options (options: FastifyServerOptions, info: BuildInfo): FastifyServerOptions {
    let current = options
    for (const fn of this.#fns.get('onOptions') ?? []) current = (fn as PoolHooks['onOptions'])(current, info) ?? current
    return current
  }

  /** Run the building hook onBuild; what one throws fails the build. */
  build (app: FastifyInstance, info: BuildInfo): void {
    for (const fn of this.#fns.get('onBuild') ?? []) (fn as PoolHooks['onBuild'])(app, info)
  }

  /** Tell every hook of `name`; one that throws is logged and the others still run. */
  tell<K extends TellHookName> (name: K, event: Parameters<PoolHooks[K]>[0], log: FastifyBaseLogger | undefined): void {
    const fns = this.#fns.get(name)
    if (fns === undefined) return
    for (const fn of fns) {
      try {
        fn(event)
      } catch (err) {
        if (log !== undefined) log.error({ err, hook: name }, `the ${name} hook failed`)
        else process.emitWarning(`fastify-pool: the ${name} hook failed: ${(err as Error)?.message ?? String(err)}`, { code: 'FST_POOL_HOOK' })
      }
    }
  }
}
