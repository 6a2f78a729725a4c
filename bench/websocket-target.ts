// The WebSocket server under test, in its own process (see child.ts): an
// echo route on @fastify/websocket, served by bare Fastify (listen() on
// port 0) or by a pooled listener with the same plugin.
//   argv[2]: fastify | pool
import type { AddressInfo } from 'node:net'
import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPool, type Pool } from 'fastify-pool'
import { serve } from './child.ts'
import type { Sample } from './target.ts'

export interface WsTargetInfo { url: string }

const plugin = async (app: FastifyInstance): Promise<void> => {
  await app.register(websocket)
  app.get('/ws', { websocket: true }, (socket) => {
    socket.on('message', (data, binary) => socket.send(data, { binary }))
  })
}

const variant = process.argv[2]
let url: string
let stop: () => Promise<unknown>
let pool: Pool | undefined
if (variant === 'fastify') {
  const app = Fastify()
  await app.register(plugin)
  await app.listen({ port: 0, host: '127.0.0.1' })
  url = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws`
  stop = () => app.close()
} else if (variant === 'pool') {
  pool = createPool({ servers: [{ name: 'ws', listen: '127.0.0.1:0' }], handlers: plugin })
  await pool.start()
  url = `${pool.load('ws')!.url!.replace('http', 'ws')}/ws`
  stop = () => pool!.stop({ timeout: 5000 })
} else {
  throw new Error(`unknown variant ${String(variant)}`)
}

serve({
  info: (): WsTargetInfo => ({ url }),
  sample: (): Sample => {
    const cpu = process.cpuUsage()
    const elu = performance.eventLoopUtilization()
    return { cpu: (cpu.user + cpu.system) / 1000, active: elu.active, idle: elu.idle, wall: performance.now(), gc: 0 }
  },
  /** Restart the pool's listener; resolves at the swap, with what the pool says it holds. */
  restart: async () => {
    if (pool === undefined) throw new Error('restarts need the pool variant')
    const [report] = await pool.restart()
    const status = pool.load('ws')!.status
    return { generation: report?.generation, upgraded: status.upgraded, retiring: status.retiring.length }
  }
}, async () => { await stop() })
