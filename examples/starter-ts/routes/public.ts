// The public API, served by the "public" and "secure" listeners.
import type { FastifyInstance } from 'fastify'

export interface Item {
  id: number
  name: string
}

export default async function publicRoutes (app: FastifyInstance): Promise<void> {
  app.get('/', async () => ({ hello: 'world' }))

  app.get<{ Params: { id: number } }>('/items/:id', {
    schema: {
      params: {
        type: 'object',
        properties: { id: { type: 'integer', minimum: 1 } },
        required: ['id']
      }
    }
  }, async (request): Promise<Item> => {
    const { id } = request.params
    return { id, name: `item ${id}` }
  })
}
