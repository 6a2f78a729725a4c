// `fastify-pool/control`: the control API's parts that a process layer
// composes (fastify-pool-cli's workers: one action acted on in every worker).
export { controlAction, type ControlAction, type ControlActionBody, type ControlResult } from './control.ts'
