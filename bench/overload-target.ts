// The server under test of the overload suite, in its own process (see
// child.ts). Two listeners: `public`, whose GET / burns about 2 ms of CPU
// before it answers, and `admin`, with the health routes and GET /pool that
// the prober hits while `public` is flooded. One of:
//   pool            createPool() with its defaults (nothing said about
//                   overload), the control API and the metrics on admin
//   fastify         two bare Fastify instances, the same routes
//   under-pressure  the same, with @fastify/under-pressure on the public one
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import underPressure from '@fastify/under-pressure'
import Fastify, { type FastifyInstance } from 'fastify'
import { createPool, type Pool } from 'fastify-pool'
import { serve } from './child.ts'

export type OverloadVariant = 'pool' | 'fastify' | 'under-pressure'

export interface OverloadTargetInfo {
  /** GET / of the public listener. */
  public: string
  /** The admin listener's origin, without a trailing slash. */
  admin: string
  /** What this variant runs, for the report. */
  features: string
}

/** The public listener's load shedding, from the pool's status. */
export interface ShedFigures { shed: number, target: number }

/** CPU the route burns per request, in ms: a handler that does real work, not an echo. */
const BURN_MS = 2
const BODY = { hello: 'world' }

/**
 * Flood requests (the generator marks them) whose route ran, per second from
 * the first one: what the server did, whether or not its answer reached
 * the generator in time.
 */
let ranPerSecond: number[] = []
let firstRanAt = 0

function countRun (): void {
  const now = performance.now()
  if (firstRanAt === 0) firstRanAt = now
  const i = Math.floor((now - firstRanAt) / 1000)
  ranPerSecond[i] = (ranPerSecond[i] ?? 0) + 1
}

function burn (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}

const publicRoutes = async (app: FastifyInstance): Promise<void> => {
  app.get('/', async (req) => {
    if (req.headers['x-overload-flood'] !== undefined) countRun()
    burn(BURN_MS)
    return BODY
  })
}

/** The bare variants' admin routes: what the pool's health routes and control API answer, in small. */
const bareAdmin = async (app: FastifyInstance): Promise<void> => {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async () => ({ status: 'ok' }))
  app.get('/pool', async () => ({ uptime: process.uptime(), listeners: [{ name: 'public', state: 'serving' }, { name: 'admin', state: 'serving' }] }))
}

const variant = process.argv[2] as OverloadVariant
/** under-pressure's options, as JSON (overload.ts says which and why). */
const pressure = JSON.parse(process.argv[3] ?? '{}') as Record<string, number>
let info: OverloadTargetInfo
let stop: () => Promise<unknown>
let pool: Pool | undefined

if (variant === 'pool') {
  pool = createPool({
    servers: [
      { name: 'public', listen: '127.0.0.1:0' },
      { name: 'admin', listen: '127.0.0.1:0', handler: 'admin' }
    ],
    // admin serves only what the pool adds to it: health routes, control API, metrics.
    handlers: { default: publicRoutes, admin: async () => {} },
    control: { listener: 'admin' },
    metrics: { listener: 'admin' }
  })
  await pool.start()
  const url = (name: string): string => {
    const found = pool?.load(name)?.url
    if (found === undefined) throw new Error(`the pool has no URL for ${name}`)
    return found
  }
  info = { public: `${url('public')}/`, admin: url('admin'), features: 'createPool() defaults (overload not configured), control: { listener: \'admin\' }, metrics: { listener: \'admin\' }' }
  stop = () => pool?.stop({ timeout: 5000 }) ?? Promise.resolve()
} else if (variant === 'fastify' || variant === 'under-pressure') {
  const publicApp = Fastify()
  // A copy: the plugin writes into the options it is given.
  if (variant === 'under-pressure') await publicApp.register(underPressure, { ...pressure })
  await publicApp.register(publicRoutes)
  const adminApp = Fastify()
  await adminApp.register(bareAdmin)
  await Promise.all([publicApp.listen({ port: 0, host: '127.0.0.1' }), adminApp.listen({ port: 0, host: '127.0.0.1' })])
  const port = (app: FastifyInstance): number => (app.server.address() as AddressInfo).port
  info = {
    public: `http://127.0.0.1:${port(publicApp)}/`,
    admin: `http://127.0.0.1:${port(adminApp)}`,
    features: variant === 'fastify'
      ? 'two Fastify() instances, one per port'
      : `two Fastify() instances, @fastify/under-pressure on the public one with ${JSON.stringify(pressure)}`
  }
  stop = () => Promise.all([publicApp.close(), adminApp.close()])
} else {
  throw new Error(`unknown variant ${String(variant)}`)
}

serve({
  info: () => info,
  /** The pool's own count of 503s on public and its loop-time target; undefined with shedding off. */
  shed: (): ShedFigures | undefined => {
    const overload = pool?.load('public')?.status.overload
    return overload === undefined ? undefined : { shed: overload.shed, target: overload.target }
  },
  rss: () => process.memoryUsage().rss,
  /** Flood requests whose route ran in the first `seconds` seconds from the first one; the count starts again. */
  ran: ({ seconds }: { seconds: number }): number => {
    const ran = ranPerSecond.slice(0, seconds).reduce((a, b) => a + (b ?? 0), 0)
    ranPerSecond = []
    firstRanAt = 0
    return ran
  }
}, async () => { await stop() })
