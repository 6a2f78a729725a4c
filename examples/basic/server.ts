// A public API and an admin interface on localhost, started and stopped as one unit.
// Run it with `pnpm start` from the repository root; Ctrl-C drains both listeners.
import { createPool } from 'fastify-pool'

const pool = createPool({
  logger: { level: 'info' },
  servers: [
    { name: 'public', listen: process.env.PUBLIC_LISTEN ?? ':3000' },
    { name: 'admin', listen: process.env.ADMIN_LISTEN ?? '127.0.0.1:9000', handler: 'admin' }
  ],
  handlers: {
    default: async (app) => {
      app.get('/', async () => ({ hello: 'world' }))
    },
    admin: async (app) => {
      app.get('/pool', async () => pool.status())
    }
  }
})

await pool.start()
for (const l of pool) console.log(`${l.name.padEnd(8)} ${l.bind.padEnd(18)} ${l.url}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    pool.stop().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
  })
}
