// Blue-green switch inside one pool: start the new version (green) on its own
// address, check that it is ready, then drain and remove the old one (blue).
// Requests in flight on blue finish; blue's clients are told to reconnect.
import type { FastifyInstance } from 'fastify'
import type { Handler, Pool, StopReport } from 'fastify-pool'
import { get } from 'node:http'

/** Version 1 of the API: what blue serves. */
export const v1: Handler = async (app: FastifyInstance) => {
  app.get('/', async () => ({ version: 1 }))
  // Stands for a long request (an upload, a report) that a switch must not cut.
  app.get('/slow', async () => {
    await new Promise(resolve => setTimeout(resolve, 300))
    return { version: 1, slow: true }
  })
}

/** Version 2: what green serves. */
export const v2: Handler = async (app: FastifyInstance) => {
  app.get('/', async () => ({ version: 2 }))
}

/** GET a URL; resolves with the status code (bounded by a 5 s timeout). */
function status (url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 5000 }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('timeout', () => req.destroy(new Error(`${url} timed out`)))
    req.on('error', reject)
  })
}

export interface SwitchResult {
  /** URL green serves on. */
  green: string
  /** Blue's drain. */
  blue: StopReport | undefined
}

/**
 * Replace listener `from` by a new listener `to`, on `listen`, serving handler
 * key `handler`. Green is checked through its readiness route over the
 * network before blue stops; if it is not ready, green is removed and blue
 * keeps serving.
 */
export async function blueGreen (pool: Pool, from: string, to: { name: string, listen: string, handler: string }): Promise<SwitchResult> {
  const blue = pool.load(from)
  if (blue === undefined) throw new Error(`no listener "${from}" to switch from`)
  const green = pool.storeNew(to)
  try {
    await green.start()
    const ready = await status(`${green.url}/readyz`)
    if (ready !== 200) throw new Error(`green answered ${ready} on /readyz`)
  } catch (err) {
    await green.stop({ timeout: 0 })
    pool.delete(green.name)
    throw err
  }
  const report = await blue.stop()
  pool.delete(blue.name)
  return { green: green.url as string, blue: report }
}
