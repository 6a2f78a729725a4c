// The admin listener serves health, readiness and the control API (from the
// pool file's control section); it needs no routes of its own.

/** @param {import('fastify').FastifyInstance} _app */
export default async function admin (_app) {}
