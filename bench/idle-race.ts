// `node --conditions=source --import tsx bench/idle-race.ts [drains] [clients]`
// How often does a drain still cross a client's request on the wire? Each
// drain starts a listener, gives it `clients` keep-alive clients that each
// send a request, think for a random 0-400 ms, and send again until refused,
// then stops the listener while they think. Outcomes are counted; a hang-up
// (the client's request met the server's FIN) is the remaining window of
// docs/lifecycle.md. Loopback only, bounded by the drain count.
import { Agent, request } from 'node:http'
import { createPool } from 'fastify-pool'

const drains = Number(process.argv[2] ?? 100)
const clients = Number(process.argv[3] ?? 20)
const counts: Record<string, number> = {}
const count = (k: string): void => { counts[k] = (counts[k] ?? 0) + 1 }

function get (url: string, agent: Agent): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200 ? (res.headers.connection === 'close' ? '200 close' : '200') : `${res.statusCode}`))
    })
    // reusedSocket: the request went out on a kept-alive connection (the race), not a new one.
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code ?? err.message}${req.reusedSocket ? ' (reused connection)' : ''}`))
    req.end()
  })
}

for (let d = 0; d < drains; d++) {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }], handlers: async (app) => { app.get('/', async () => 'ok') } })
  await pool.start()
  const url = pool.load('a')?.url as string
  const runs = Array.from({ length: clients }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    for (let i = 0; i < 50; i++) {
      const outcome = await get(url, agent)
      if (outcome !== '200') { count(outcome); break }
      await new Promise(resolve => setTimeout(resolve, Math.random() * 400))
    }
    agent.destroy()
  })
  await new Promise(resolve => setTimeout(resolve, 50 + Math.random() * 300))
  await pool.stop({ timeout: 5000 })
  await Promise.all(runs)
}
const total = drains * clients
console.log(JSON.stringify({ drains, clients, outcomes: counts, hangUpsPerClientDrain: Object.entries(counts).filter(([k]) => /ECONNRESET|EPIPE/.test(k)).reduce((n, [, v]) => n + v, 0) / total }))
