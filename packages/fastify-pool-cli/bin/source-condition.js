// Module resolve hook for source checkouts: the workspace packages resolve
// through their "source" export condition (src/*.ts). Only ours: a dependency
// with its own "source" condition may not ship the files it points at.
const OURS = /^fastify-pool(-cli)?(\/|$)/

export async function resolve (specifier, context, next) {
  if (OURS.test(specifier) && !context.conditions.includes('source')) {
    return next(specifier, { ...context, conditions: [...context.conditions, 'source'] })
  }
  return next(specifier, context)
}
