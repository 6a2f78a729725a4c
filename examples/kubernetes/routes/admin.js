// The admin listener's own routes. The pool adds /healthz, /readyz, the
// metrics (/metrics) and the control API (/pool) to it, from pool.yaml.
/** @param {import('fastify').FastifyInstance} app */
export default async function admin (app) {
  app.get('/', async () => ({ service: 'fastify-pool-kubernetes-example', routes: ['/healthz', '/readyz', '/metrics', '/pool'] }))
}
