// `fastify-pool`: the pool, its listeners, the plugin, the configuration's
// check, the errors and the events. The parts built on the pool's public
// hooks have entry points of their own: `fastify-pool/metrics`,
// `fastify-pool/control`, `fastify-pool/monitor`; what tools that read pool
// files need is at `fastify-pool/config`, what a process layer needs at
// `fastify-pool/sockets` (docs/api.md, "Entry points").
import type { CanaryEvent as CanaryEventOf, CutEvent as CutEventOf, GenerationEvent as GenerationEventOf, StateChange as StateChangeOf, BuildInfo as BuildInfoOf, RetireEvent as RetireEventOf, PoolHooks as PoolHooksOf, HooksOption as HooksOptionOf } from './config/types.ts'
import type { Listener } from './listener/listener.ts'
import type { Pool } from './pool.ts'

// The pool and its listeners.
export { Pool, type WalkFunction } from './pool.ts'
export { createPool } from './create.ts'
export { resolvePoolOptions, isResolvedOptions, type PoolOptions, type ResolvedPoolOptions } from './resolve.ts'
export { Listener } from './listener/listener.ts'
export { isPool, isListener } from './base/brand.ts'
export { fastifyPool, default, type FastifyPoolOptions } from './plugin.ts'
export { poolStatusRoute, type PoolStatusRouteOptions, type PoolStatusBody } from './control/status-route.ts'

// Configuration.
export { validateConfig, BUILTIN_DEFAULTS, type ListenerConfig, type NormalizedConfig, type PoolDefaults, type PassThroughOptions, type ValidateOptions } from './config/config.ts'
export { parseListen, formatAddress, type ListenAddress } from './config/address.ts'
export { HEALTH_RESPONSE_SCHEMA } from './listener/health.ts'
export { REDACT_PATHS } from './base/redact.ts'
export type { HealthConfig, LogLevel } from './config/schema.ts'
export type { TlsConfig, CertificateInfo } from './config/tls.ts'
export type { ReloadEvent, ReloadReport, TrafficFigures, ControlOptions, Factory, Field, Handler, Handlers, ListenerState, ListenerStatus, MetricsOptions, OverloadSettings, OverloadStatus, SocketSource, RestartReport, RetireReport, RetiringStatus, StopOptions, StopReport, HookName, CanaryOptions, CanaryReport, CanaryStatus, CanaryFigures, RestartOptions } from './config/types.ts'
export type { ReloadOptions } from './reload.ts'
export type { PoolClosing } from './listener/closing.ts'
export type { ProcessFigures } from './observability/process-figures.ts'
export type { ControlStatusBody, ControlActionBody, ControlResult } from './control/control.ts'
export type { PeriodicMonitorOptions, MonitorOptions, MonitorReport, MonitorStatus, VersionInfo } from './observability/monitor.ts'
export type { AutoRestartOptions } from './observability/auto-restart.ts'

// Errors.
export * as errors from './base/errors.ts'
export { isPoolError, hasIssues } from './base/errors.ts'
export type { ValidationIssue, ListenerFailure } from './base/errors.ts'

// Events: the diagnostics channels and the hooks carry the same ones.
export { CHANNELS } from './listener/state.ts'
export type { UpgradeEvent } from './listener/state.ts'
/** What `fastify-pool:listener:state` publishes, and the `onStateChange` hook gets. */
export type StateChange = StateChangeOf<Listener>
/** What `fastify-pool:listener:generation` publishes, and the `onSwap` hook gets. */
export type GenerationEvent = GenerationEventOf<Listener>
/** What `fastify-pool:listener:cut` publishes, and the `onCut` hook gets. */
export type CutEvent = CutEventOf<Listener>
/** What the `onOptions` and `onBuild` hooks learn of the generation being built. */
export type BuildInfo = BuildInfoOf<Listener, Pool>
/** What the `onRetire` hook gets. */
export type RetireEvent = RetireEventOf<Listener>
/** The hooks, by name (`pool.addHook(name, fn)`). */
export type PoolHooks = PoolHooksOf<Listener, Pool>
/** The `hooks` option of createPool(). */
export type HooksOption = HooksOptionOf<Listener, Pool>
/** What the `onCanary` hook gets. */
export type CanaryEvent = CanaryEventOf<Listener>
