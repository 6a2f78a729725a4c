// The orders service. An order names its user through the users service,
// reached in-process with app.pool.inject(): no socket, no port to know.
const orders = new Map([[10, { id: 10, userId: 1, total: 42 }], [11, { id: 11, userId: 2, total: 7 }]])

/** @param {import('fastify').FastifyInstance} app */
export default async function ordersService (app) {
  app.get('/orders', async () => [...orders.values()])
  app.get('/orders/:id', async (request, reply) => {
    const order = orders.get(Number(/** @type {{ id: string }} */ (request.params).id))
    if (order === undefined) return reply.code(404).send({ error: 'no such order' })
    const user = await app.pool.inject('users', `/users/${order.userId}`)
    return { ...order, user: user.json() }
  })
}
