// Handler modules loaded from a file have no way to reach the pool that runs
// them (they are plain plugins, registered without options). Each one is
// wrapped so that `app.pool` holds the pool, as the fastify-pool plugin does,
// which the pool status route and admin routes rely on.
import type { FastifyInstance, FastifyPluginCallback } from 'fastify'
import fp from 'fastify-plugin'
import type { Handler, Pool } from 'fastify-pool'

// One wrapper per plugin and pool: a reload must see an unchanged handler as
// the same function, or it would rebuild every listener.
const wrappers = new WeakMap<Handler, WeakMap<object, Handler>>()

export function withPool (plugin: Handler, pool: () => Pool, owner: object): Handler {
  let byOwner = wrappers.get(plugin)
  if (byOwner === undefined) wrappers.set(plugin, byOwner = new WeakMap())
  const known = byOwner.get(owner)
  if (known !== undefined) return known
  const wrapper: Handler = function (app: FastifyInstance, _options: Record<string, never>, done: (err?: Error) => void): void {
    if (!app.hasDecorator('pool')) app.decorate('pool', pool())
    app.register(plugin as FastifyPluginCallback)
    done()
  }
  // fastify-plugin: the decorator lands on the listener's instance (no
  // encapsulation of the wrapper), the wrapped plugin keeps its own, and
  // errors name the module. The versions are the peer range's: Fastify
  // refuses a plugin whose range leaves its own version out (pre-releases
  // aside), and 6.0.0 would refuse '5.x'.
  const wrapped = fp(wrapper, { fastify: '5.x || 6.x', name: `fastify-pool-handler:${plugin.name || 'handler'}` })
  byOwner.set(owner, wrapped)
  return wrapped
}

export function wrapHandlers (handlers: Record<string, Handler> | undefined, pool: () => Pool, owner: object): Record<string, Handler> | undefined {
  if (handlers === undefined) return undefined
  const out: Record<string, Handler> = {}
  for (const [key, plugin] of Object.entries(handlers)) out[key] = withPool(plugin, pool, owner)
  return out
}
