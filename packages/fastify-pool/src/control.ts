// `fastify-pool/control`: the control API and its status page as a part of
// their own, built on the pool's public hooks (docs/operations.md).
// `createPool({ control })` registers it for you. Also the pieces a process
// layer composes (fastify-pool-cli's workers: one action acted on in every
// worker) and the figures of the process it reports.
export { PoolControl, controlIssues, controlAction, canaryEnd, isLocalOnly, type ControlAction, type ControlActionBody, type ControlResult, type ControlStatusBody, type ControlSettings } from './control/control.ts'
export { poolStatusRoute, poolStatus, type PoolStatusRouteOptions, type PoolStatusBody } from './control/status-route.ts'
export { ProcessSampler, type ProcessFigures } from './observability/process-figures.ts'
export type { ControlOptions } from './config/types.ts'
