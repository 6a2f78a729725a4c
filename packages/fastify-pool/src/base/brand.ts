// Pools and listeners are recognised by a registered symbol, not by
// instanceof, so that two copies of this package (say, the command's and the
// app's) work together.

const kPool = Symbol.for('fastify-pool.pool')
const kListener = Symbol.for('fastify-pool.listener')

/**
 * Which pool made a set of listeners (createPool() or clone()), for the
 * events they publish and the control API they serve: claimed once, by the
 * first pool built on them; selections and merges of it do not claim.
 */
export class Owner {
  #pool: object | undefined
  get pool (): object | undefined { return this.#pool }
  /** The first claim wins. */
  claim (pool: object): void { this.#pool ??= pool }
}

/** Mark a pool or listener instance. */
export function brand (target: object, kind: 'pool' | 'listener'): void {
  Object.defineProperty(target, kind === 'pool' ? kPool : kListener, { value: true })
}

/** True when `value` is a pool made by createPool(), from any copy of the package. */
export function isPool (value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kPool] === true
}

/** True when `value` is a listener, from any copy of the package. */
export function isListener (value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kListener] === true
}
