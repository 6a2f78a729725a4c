// The payments service.
let next = 100

/** @param {import('fastify').FastifyInstance} app */
export default async function paymentsService (app) {
  app.post('/payments', {
    schema: {
      body: {
        type: 'object',
        properties: { orderId: { type: 'integer' }, amount: { type: 'number', exclusiveMinimum: 0 } },
        required: ['orderId', 'amount']
      }
    }
  }, async (request, reply) => {
    const { orderId, amount } = /** @type {{ orderId: number, amount: number }} */ (request.body)
    return reply.code(201).send({ id: next++, orderId, amount, status: 'accepted' })
  })
}
