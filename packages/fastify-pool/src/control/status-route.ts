// A route that answers every listener's health report as JSON, for an admin
// listener: it names binds and errors, so keep it off public listeners.
import type { FastifyInstance } from 'fastify'
import { validationError, type ValidationIssue } from '../base/errors.ts'
import type { MonitorOptions, MonitorReport, MonitorStatus, VersionInfo } from '../observability/monitor.ts'
import type { Listener } from '../listener/listener.ts'
import { isPool } from '../base/brand.ts'
import { optionIssues, StatusRouteSchema, withDefaults } from '../config/options.ts'

/** What the route reads of a pool (a Pool is one; this file sits below pool.ts). */
export interface ReportingPool {
  load: (key: string) => Listener | undefined
  monitor: (version?: VersionInfo, options?: MonitorOptions) => Promise<MonitorReport[]>
  uptime: () => number
}

export interface PoolStatusRouteOptions {
  /** The pool to report on (default: `app.pool`, set by the fastify-pool plugin). */
  pool?: ReportingPool
  /** Route path (default `/pool`). */
  path?: string
  /** Version info copied into every report. */
  version?: VersionInfo
  /** Check every listener on each request (default: only when no periodic checks run). */
  fresh?: boolean
  /** Milliseconds a check may take. */
  timeout?: number
  /** Answer 503 when the pool status is `ko` (default false: always 200). */
  strict?: boolean
}

/** The body of the pool status route. */
export interface PoolStatusBody {
  /** `ko` if an enabled, required listener is ko; `warn` if any enabled listener is not ok; else `ok`. */
  status: MonitorStatus
  /** Milliseconds the longest-running listener has been up. */
  uptime: number
  listeners: MonitorReport[]
}

// The shape of PoolStatusBody; a report's fields are listed in docs/health.md
// and serialised as they are (a report carries the user's version info).
const STATUS_BODY = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'warn', 'ko'] },
    uptime: { type: 'number' },
    listeners: { type: 'array', items: { type: 'object', additionalProperties: true } }
  },
  required: ['status', 'uptime', 'listeners']
} as const

/** The pool status a set of reports adds up to. */
export function poolStatus (pool: Pick<ReportingPool, 'load'>, reports: MonitorReport[]): MonitorStatus {
  let status: MonitorStatus = 'ok'
  for (const r of reports) {
    const l = pool.load(r.name)
    if (l === undefined || l.config.disabled || r.status === 'ok') continue
    if (r.status === 'ko' && !l.config.optional) return 'ko'
    status = 'warn'
  }
  return status
}

export async function poolStatusRoute (app: FastifyInstance, given: PoolStatusRouteOptions): Promise<void> {
  // Fastify passes undefined when register() got an options function that returned nothing.
  const options = given ?? {}
  const issues: ValidationIssue[] = optionIssues(StatusRouteSchema, options, '')
  const pool = options.pool ?? (app.hasDecorator('pool') ? app.pool : undefined)
  if (!isPool(pool)) {
    issues.unshift({ path: 'pool', message: options.pool === undefined ? 'is required (or register the fastify-pool plugin first, so that app.pool exists)' : 'must be a Pool made by createPool()' })
  }
  if (issues.length > 0 || pool === undefined) throw validationError(issues)
  const { path, version, fresh, timeout, strict } = withDefaults(StatusRouteSchema, options) as PoolStatusRouteOptions & { path: string }
  const monitorOptions = { ...(fresh === undefined ? {} : { fresh }), ...(timeout === undefined ? {} : { timeout }) }

  app.get(path, { logLevel: 'warn', schema: { response: { 200: STATUS_BODY, 503: STATUS_BODY } } }, async (_request, reply): Promise<PoolStatusBody> => {
    const reports = await pool.monitor(version, monitorOptions)
    const status = poolStatus(pool, reports)
    reply.header('cache-control', 'no-store')
    if (strict === true && status === 'ko') reply.code(503)
    return { status, uptime: pool.uptime(), listeners: reports }
  })
}
