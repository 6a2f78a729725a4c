// What the primary and its workers say to each other over the cluster's IPC
// channel, and the worker's side of it: asking the primary for the status of
// every worker, for the metrics summed over them, for a rolling reload, for
// an upgrade of every process, or for an action (restart, stop, start) on
// listeners of every worker.
import cluster from 'node:cluster'
import type { ListenerStatus, ProcessFigures, UpgradeEvent } from 'fastify-pool'
import type { ControlAction } from 'fastify-pool/control'
import type { UpgradeResult } from './upgrade.ts'

/** Every message carries `fastify-pool` with its kind; requests and answers carry an id. */
export type ClusterMessage =
  | { 'fastify-pool': 'ready' }
  | { 'fastify-pool': 'stop', handOff?: boolean }
  | { 'fastify-pool': 'listeners-request', id: string }
  | { 'fastify-pool': 'listeners', id: string, listeners: ListenerStatus[], process: ProcessFigures }
  | { 'fastify-pool': 'status-request', id: string }
  | { 'fastify-pool': 'status-answer', id: string, workers: Array<{ id: number, pid: number | undefined, listeners: ListenerStatus[], process: ProcessFigures }>, restarts: number, primary: ProcessFigures }
  | { 'fastify-pool': 'metrics-request', id: string }
  | { 'fastify-pool': 'metrics-answer', id: string, text: string }
  | { 'fastify-pool': 'roll-request', id: string, canary?: number }
  | { 'fastify-pool': 'roll-answer', id: string, ok: boolean, error?: string, statusCode?: number, problems?: object[], report?: object }
  | { 'fastify-pool': 'canary-reload', id: string, canary: number, text?: string }
  | { 'fastify-pool': 'canary-reloaded', id: string, ok: boolean, error?: string, statusCode?: number, problems?: object[], report?: object }
  | { 'fastify-pool': 'upgrade-request', id: string, node?: string, timeout?: number }
  | { 'fastify-pool': 'upgrade-answer', id: string, result?: UpgradeResult, error?: string, statusCode?: number }
  | { 'fastify-pool': 'upgrade-event', event: UpgradeEvent }
  | { 'fastify-pool': 'socket-request', id: string, bind: string }
  | { 'fastify-pool': 'socket-answer', id: string, error?: string }
  | { 'fastify-pool': 'act-request', id: string, action: ControlAction, query: Record<string, unknown>, self: string }
  | { 'fastify-pool': 'act-answer', id: string, statusCode: number, body: object }
  | { 'fastify-pool': 'act', id: string, action: ControlAction, query: Record<string, unknown>, self: string }
  | { 'fastify-pool': 'acted', id: string, statusCode: number, body: object }

let sequence = 0

/** A worker's request to the primary; resolves with its answer (rejects after `ms`). */
export function askPrimary<K extends 'status' | 'metrics' | 'roll' | 'upgrade' | 'act'> (kind: K, ms = 10_000, fields: object = {}): Promise<Extract<ClusterMessage, { 'fastify-pool': `${K}-answer` }>> {
  return new Promise((resolve, reject) => {
    if (!cluster.isWorker || process.send === undefined) { reject(new Error('not a cluster worker')); return }
    const id = `${process.pid}-${++sequence}`
    const timer = setTimeout(() => { process.removeListener('message', on); reject(new Error(`the primary did not answer the ${kind} request within ${ms} ms`)) }, ms)
    timer.unref()
    const on = (message: ClusterMessage): void => {
      if (message?.['fastify-pool'] !== `${kind}-answer` || (message as { id?: string }).id !== id) return
      clearTimeout(timer)
      process.removeListener('message', on)
      resolve(message as Extract<ClusterMessage, { 'fastify-pool': `${K}-answer` }>)
    }
    process.on('message', on)
    process.send({ ...fields, 'fastify-pool': `${kind}-request`, id })
  })
}

/**
 * A worker asks the primary for a listener's socket again (its own
 * descriptor of it closed when the listener stopped): resolves with Node's
 * handle of it, sent with the answer (a descriptor of this process's own).
 */
export function askPrimaryForSocket (bind: string, ms = 10_000): Promise<object> {
  return new Promise((resolve, reject) => {
    if (!cluster.isWorker || process.send === undefined) { reject(new Error('not a cluster worker')); return }
    const id = `${process.pid}-${++sequence}`
    const timer = setTimeout(() => { process.removeListener('message', on); reject(new Error(`the primary did not send the socket of ${bind} within ${ms} ms`)) }, ms)
    timer.unref()
    const on = (message: ClusterMessage, handle: unknown): void => {
      if (message?.['fastify-pool'] !== 'socket-answer' || message.id !== id) return
      clearTimeout(timer)
      process.removeListener('message', on)
      if (typeof handle === 'object' && handle !== null) resolve(handle)
      else reject(new Error(message.error ?? `the primary holds no socket for ${bind}`))
    }
    process.on('message', on)
    process.send({ 'fastify-pool': 'socket-request', id, bind } satisfies ClusterMessage)
  })
}

/** The variable that carries the pool file the primary validated (base64) to a worker. */
export const SOURCE_ENV = 'FASTIFY_POOL_SOURCE'

/** In a worker: the text of the pool file its primary validated, taken out of the environment (its own children must not inherit it). */
export function sourceFromPrimary (): { text?: string } {
  const encoded = process.env[SOURCE_ENV]
  if (encoded === undefined) return {}
  delete process.env[SOURCE_ENV]
  return { text: Buffer.from(encoded, 'base64').toString('utf8') }
}
