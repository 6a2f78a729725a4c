// Handler maps: checking what the user gave, and choosing a listener's plugin.
import type { ValidationIssue } from '../base/errors.ts'
import type { Handler, Handlers } from './types.ts'

/** Problems with a `handlers` option: one plugin, or handler key -> plugin. */
export function checkHandlers (handlers: unknown): ValidationIssue[] {
  if (handlers === undefined || typeof handlers === 'function') return []
  if (typeof handlers !== 'object' || handlers === null || Array.isArray(handlers)) {
    return [{ path: 'handlers', message: `must be a Fastify plugin or an object mapping handler keys to plugins (got ${Array.isArray(handlers) ? 'array' : typeof handlers})` }]
  }
  return Object.entries(handlers).filter(([, v]) => typeof v !== 'function')
    .map(([k, v]) => ({ path: `handlers.${k}`, message: `must be a Fastify plugin function (got ${typeof v})` }))
}

/** The plugin a listener with handler key `key` registers: the only one, or the one its key names. */
export function handlerFor (handlers: Handlers | undefined, key: string): Handler | undefined {
  return typeof handlers === 'function' ? handlers : handlers?.[key]
}
