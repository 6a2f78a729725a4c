// Module resolve hook for source checkouts: the workspace packages resolve
// through their "source" export condition (src/*.ts). Only ours: a dependency
// with its own "source" condition may not ship the files it points at.
const OURS = /^fastify-pool(-cli)?(\/|$)/

/** The synchronous hook (module.registerHooks, Node ≥ 22.15). */
export function resolveSync (specifier, context, next) {
  if (OURS.test(specifier) && !context.conditions.includes('source')) {
    return next(specifier, { ...context, conditions: [...context.conditions, 'source'] })
  }
  return next(specifier, context)
}

/** The asynchronous hook (module.register, on older Node; deprecated from Node 26). */
export async function resolve (specifier, context, next) {
  return resolveSync(specifier, context, next)
}
