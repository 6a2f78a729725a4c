// The lifecycle's events: a listener's states and which changes are allowed
// (Listener#setState is the one writer; this is the table it obeys), and
// the node:diagnostics_channel channels that states, generation swaps, cut
// requests and reloads are published on. Publishing costs nothing while
// nobody subscribes.
import { channel } from 'node:diagnostics_channel'
import type { CutEvent, GenerationEvent, ListenerRef, ListenerState, StateChange } from '../config/types.ts'

export type { CutEvent, GenerationEvent, ListenerEvent, StateChange } from '../config/types.ts'

/** The names of the channels, as subscribers write them (docs/operations.md, "Events"). */
export const CHANNELS = Object.freeze({
  state: 'fastify-pool:listener:state',
  generation: 'fastify-pool:listener:generation',
  cut: 'fastify-pool:listener:cut',
  reload: 'fastify-pool:pool:reload',
  /** Published by `fastify-pool start` in the process that serves after an upgrade, or that kept serving when one failed. */
  upgrade: 'fastify-pool:process:upgrade'
})

/** What `fastify-pool:process:upgrade` publishes (docs/operations.md). */
export interface UpgradeEvent {
  result: 'ok' | 'failed'
  /** The process replaced (`ok`), or the one that kept serving (`failed`). */
  previous: number
  /** The successor's pid; undefined if it could not be started. */
  pid: number | undefined
  /** The successor's Node version (`ok`), or the binary it was to run. */
  node: string
  reason?: string
  /** Milliseconds from the request to the successor's ready, or to the failure. */
  duration: number
  /** Upgrades so far in this line of processes, by result (each hands its counts on). */
  counts: { ok: number, failed: number }
}

/** Every state change of every listener, as a StateChange (see docs/lifecycle.md). */
export const stateChannel = channel(CHANNELS.state)

/**
 * Every reload, as `{ pool, report }` once applied or `{ pool, error }` when
 * it was refused (FST_POOL_VALIDATE, nothing changed) or failed and was undone.
 */
export const reloadChannel = channel(CHANNELS.reload)

/** The state changes a listener may make; #setState refuses any other. */
export const TRANSITIONS: Readonly<Record<ListenerState, readonly ListenerState[]>> = {
  stopped: ['starting', 'stopped'],
  starting: ['running', 'failed'],
  running: ['draining'],
  draining: ['stopped'],
  failed: ['starting', 'stopped']
}

/** Throws when a listener would make a change the table does not allow (a bug in this library). */
export function checkTransition (name: string, from: ListenerState, to: ListenerState): void {
  if (!TRANSITIONS[from].includes(to)) throw new Error(`fastify-pool internal error: listener "${name}" cannot go from ${from} to ${to}`)
}

/**
 * `fastify-pool:listener:generation`: a new generation took over a live
 * socket (restart, reconfigure, a reload's change), published at the swap.
 */
export const generationChannel = channel(CHANNELS.generation)

/** `fastify-pool:listener:cut`: a drain or a retiring generation reached its deadline and cut requests. */
export const cutChannel = channel(CHANNELS.cut)

/** Publish a state change (nothing is built while nobody subscribes). */
export function publishState (pool: object | undefined, listener: ListenerRef, from: ListenerState, to: ListenerState, generation: number, error: Error | undefined): void {
  if (!stateChannel.hasSubscribers) return
  const change: StateChange = { pool, listener, name: listener.name, bind: listener.bind, from, to, generation }
  if (error !== undefined) change.error = error
  stateChannel.publish(change)
}

export function publishGeneration (listener: ListenerRef, generation: number, previous: number): void {
  if (generationChannel.hasSubscribers) generationChannel.publish({ listener, name: listener.name, bind: listener.bind, generation, previous } satisfies GenerationEvent)
}

export function publishCut (listener: ListenerRef, generation: number, cut: number, during: CutEvent['during'], upgraded = 0): void {
  if (cutChannel.hasSubscribers) cutChannel.publish({ listener, name: listener.name, bind: listener.bind, generation, cut, upgraded, during } satisfies CutEvent)
}
