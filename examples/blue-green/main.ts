// Run the switch: node --conditions=source --import tsx examples/blue-green/main.ts
import { createPool } from 'fastify-pool'
import { blueGreen, v1, v2 } from './blue-green.ts'

const pool = createPool({
  logger: { level: 'info' },
  handlers: { v1, v2 },
  servers: [{ name: 'blue', listen: process.env.BLUE_LISTEN ?? '127.0.0.1:3830', handler: 'v1' }]
})
await pool.start()
console.log(`blue serves ${pool.load('blue')?.url}`)

const { green, blue } = await blueGreen(pool, 'blue', { name: 'green', listen: process.env.GREEN_LISTEN ?? '127.0.0.1:3831', handler: 'v2' })
console.log(`green serves ${green}; blue drained in ${blue?.duration ?? 0} ms (${blue?.cut ?? 0} request(s) cut)`)
await pool.stop()
