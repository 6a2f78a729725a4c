// Type tests for the plugin, the monitor and the status route, checked by
// `pnpm typecheck` (tsc); never run.
import Fastify from 'fastify'
import { expectTypeOf } from 'expect-type'
import fastifyPool, {
  createPool, fastifyPool as named, poolStatusRoute,
  type FastifyPoolOptions, type MonitorReport, type MonitorStatus, type Pool, type PoolStatusBody, type VersionInfo
} from 'fastify-pool'
import type { MonitorError } from 'fastify-pool/monitor'

const app = Fastify()

// The plugin: default and named export are one value; app.pool is a Pool.
expectTypeOf(named).toEqualTypeOf(fastifyPool)
app.register(fastifyPool, {
  servers: [{ name: 'public', listen: 8080, handler: 'public' }, { name: 'admin', listen: '127.0.0.1:9090', handler: 'admin' }],
  handlers: { public: async (instance) => { instance.get('/', async () => 'hi') }, admin: async () => {} },
  defaults: { stopTimeout: 5000, health: { readiness: '/ready' } },
  drainDelay: 2000,
  monitor: { interval: 10_000, rise: 2, fall: 3, onChange: (report, previous) => { expectTypeOf(report).toEqualTypeOf<MonitorReport>(); expectTypeOf(previous).toEqualTypeOf<MonitorStatus | undefined>() } }
})
app.register(fastifyPool, (parent) => ({ servers: [], logger: parent.log }))
expectTypeOf(app.pool).toEqualTypeOf<Pool>()
expectTypeOf<FastifyPoolOptions['drainDelay']>().toEqualTypeOf<number | undefined>()

// @ts-expect-error servers is a list of listener configs
app.register(fastifyPool, { servers: { name: 'a', listen: 80 } })
// @ts-expect-error drainDelay is a number of milliseconds
app.register(fastifyPool, { drainDelay: '2s' })

// The monitor.
const pool = createPool()
expectTypeOf(pool.monitor).parameter(0).toEqualTypeOf<VersionInfo | undefined>()
expectTypeOf(pool.monitor({ release: '1.0.0' }, { strict: true, timeout: 500 })).resolves.toEqualTypeOf<MonitorReport[]>()
expectTypeOf(pool.monitorNames()).toEqualTypeOf<string[]>()
expectTypeOf(pool.startMonitor({ interval: 1000 })).resolves.toEqualTypeOf<void>()
expectTypeOf<MonitorReport['status']>().toEqualTypeOf<'ok' | 'warn' | 'ko'>()
expectTypeOf<MonitorReport['latency']>().toEqualTypeOf<number | undefined>()
expectTypeOf<MonitorError['reports']>().toEqualTypeOf<MonitorReport[]>()
// @ts-expect-error a status is ok, warn or ko: nothing else
export const down: MonitorStatus = 'down'

// The status route.
app.register(poolStatusRoute, { pool, path: '/pool', strict: true, version: { release: '1.0.0' } })
app.register(poolStatusRoute)
expectTypeOf<PoolStatusBody['listeners']>().toEqualTypeOf<MonitorReport[]>()
