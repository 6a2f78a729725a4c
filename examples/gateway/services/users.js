// The users service.
const users = new Map([[1, { id: 1, name: 'Ada' }], [2, { id: 2, name: 'Grace' }]])

/** @param {import('fastify').FastifyInstance} app */
export default async function usersService (app) {
  app.get('/users', async () => [...users.values()])
  app.get('/users/:id', async (request, reply) => {
    const user = users.get(Number(/** @type {{ id: string }} */ (request.params).id))
    if (user === undefined) return reply.code(404).send({ error: 'no such user' })
    return user
  })
}
