// What a listener has only while it serves: the Node server it owns
// (server.ts), the generation serving now and those retiring after a swap
// (generation.ts), and where it is bound. Opened by a start, swapped by a
// restart, closed by a stop's drain. The listener (listener.ts) owns the
// state, the call queue and the configuration, and decides when each runs.
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { boundUrl } from '../config/address.ts'
import type { NormalizedConfig } from '../config/config.ts'
import { owed } from './connections.ts'
import { drain } from './drain.ts'
import type { Generation } from './generation.ts'
import { Retiring } from './retire.ts'
import { lastServedBy, type Canary } from './canary.ts'
import { ServerHandle } from './server.ts'
import type { HookRunner, ListenerContext, ListenerRef } from '../config/types.ts'
import type { ServerTlsOptions } from '../config/tls.ts'
import { publishCut } from './state.ts'

/** What a drain left: requests and upgraded connections cut at the deadline. */
export interface Drained { requests: number, upgraded: number }

export class Serving {
  readonly handle: ServerHandle
  /** Old generations still finishing their requests after a swap. */
  readonly retiring = new Retiring()
  readonly startedAt = Date.now()
  /** Where it is bound: host and port, or the socket path. */
  readonly address: AddressInfo | string | undefined
  /** The URL of that address (undefined for a unix socket). */
  readonly url: string | undefined
  #gen: Generation

  private constructor (handle: ServerHandle, gen: Generation, config: NormalizedConfig) {
    this.handle = handle
    this.#gen = gen
    this.address = handle.address
    this.url = boundUrl(config, this.address)
  }

  /**
   * A server for `config` with its first generation (from `build`), bound to
   * its address. On a failure what was made is closed, and the error thrown.
   */
  static async open (config: NormalizedConfig, tls: ServerTlsOptions | undefined, build: (handle: ServerHandle) => Promise<Generation>, sendTimeout: () => number, log: FastifyBaseLogger | undefined, sockets: ListenerContext['sockets']): Promise<Serving> {
    let handle: ServerHandle | undefined
    let gen: Generation | undefined
    try {
      handle = new ServerHandle(config, tls, (socket) => {
        log?.warn({ remoteAddress: socket.remoteAddress }, `send timeout (${sendTimeout()} ms): the client stopped reading; connection closed`)
        socket.destroy()
      })
      gen = await build(handle)
      handle.server.on('request', gen.dispatch)
      handle.upgrades.serve(gen.upgrades)
      await handle.listen(config.address, sockets)
    } catch (err) {
      if (gen !== undefined) await gen.close('stop').catch(() => {})
      if (handle?.listening === true) await handle.close()
      throw err
    }
    handle.server.on('error', (err) => log?.error({ err }, 'server error'))
    return new Serving(handle, gen, config)
  }

  /** The generation serving now. */
  get gen (): Generation { return this.#gen }

  /** Requests in progress on every generation: read from the connections, so this costs a walk over them. */
  get inflight (): number {
    let n = 0
    for (const socket of this.handle.http1) n += owed(socket)
    for (const gen of [this.#gen, ...this.retiring.generations()]) n += gen.streams?.size ?? 0
    return n
  }

  /** Upgraded connections (WebSockets) open, of every generation. */
  get upgraded (): number {
    let n = this.#gen.upgrades.size
    for (const gen of this.retiring.generations()) n += gen.upgrades.size
    return n
  }

  /**
   * Make `next` the serving generation, with `config`'s timeouts and `tls`.
   * Nothing awaits in here: the switch is atomic for incoming requests.
   * Returns the generation swapped out, sealed, for the caller to retire.
   */
  swap (next: Generation, config: NormalizedConfig, tls: ServerTlsOptions | undefined): Generation {
    const { handle } = this
    const server = handle.server
    const old = this.#gen
    if (tls !== undefined) handle.applyTls(tls)
    handle.applyTimeouts(config)
    server.removeListener('request', old.dispatch)
    server.on('request', next.dispatch)
    handle.upgrades.serve(next.upgrades)
    // A connection's parse errors concern the socket, not a generation: only
    // the serving instance answers them (two handlers would both write).
    for (const listener of old.clientErrorListeners) server.removeListener('clientError', listener)
    old.seal(handle, this.retiring.generations())
    this.#gen = next
    return old
  }

  /** The canary running beside the serving generation, if any. */
  get canary (): Canary | undefined { return this.#canary }
  #canary: Canary | undefined

  /**
   * Let `canary.next` serve its share beside the serving generation: the
   * server's requests and handshakes go through the canary's split (a
   * WebSocket stays with the generation that took it). Its parse errors are
   * still answered by the serving instance only.
   */
  startCanary (canary: Canary): void {
    const server = this.handle.server
    for (const listener of canary.next.clientErrorListeners) server.removeListener('clientError', listener)
    server.removeListener('request', this.#gen.dispatch)
    server.on('request', canary.dispatch)
    // A WebSocket stays with the generation that took its handshake.
    this.handle.upgrades.split(req => canary.pick(req) ? canary.next.upgrades : canary.serving.upgrades, canary.next.upgrades)
    this.#canary = canary
  }

  /**
   * End the canary. Promoted: its generation serves, with `config`'s
   * timeouts and `tls`, as after a swap. Otherwise the serving generation
   * serves alone again. Returns the generation that lost, sealed with what
   * it owes (the sockets whose last request it served), for the caller to
   * retire. Nothing awaits in here.
   */
  endCanary (promote: boolean, config: NormalizedConfig, tls: ServerTlsOptions | undefined): Generation {
    const canary = this.#canary as Canary
    this.#canary = undefined
    const { handle } = this
    const server = handle.server
    server.removeListener('request', canary.dispatch)
    const winner = promote ? canary.next : canary.serving
    const loser = promote ? canary.serving : canary.next
    if (promote) {
      if (tls !== undefined) handle.applyTls(tls)
      handle.applyTimeouts(config)
      for (const listener of canary.serving.clientErrorListeners) server.removeListener('clientError', listener)
      for (const listener of canary.next.clientErrorListeners) server.on('clientError', listener)
    }
    handle.upgrades.serve(winner.upgrades)
    server.on('request', winner.dispatch)
    // What the loser owes: the sockets whose last request it served (the serving generation: also those no request reached since the canary began).
    loser.seal(handle, this.retiring.generations(), promote ? socket => lastServedBy(socket) !== winner : socket => lastServedBy(socket) === loser)
    this.#gen = winner
    return loser
  }

  /**
   * The stop: drain under `timeout` (`drained` hears what it cut, before
   * anything closes), then close the serving generation once its last
   * connection, upgraded ones included, is gone. Resolves with what was cut
   * and the error closing threw, if any.
   */
  async close (options: { timeout: number, handOff: boolean, closeWindow: number }, drained: (cut: Drained) => void): Promise<Drained & { error?: Error }> {
    const { handle } = this
    const gen = this.#gen
    const cut = await drain({ handle, current: gen, retiring: this.retiring.generations() }, options)
    drained(cut)
    for (const listener of gen.clientErrorListeners) handle.server.removeListener('clientError', listener)
    // Every connection is gone, so older generations are idle and closing.
    // A socket's 'close' comes a little after the server's: wait for those
    // of the upgraded ones, whose handlers may still use what onClose closes.
    await gen.upgrades.idle()
    await this.retiring.settled()
    try {
      // Its onClose hooks run now, after its last response and its last connection.
      await gen.close(options.handOff ? 'handoff' : 'stop')
    } catch (err) {
      return { requests: cut.requests, upgraded: cut.upgraded, error: err as Error }
    }
    return { requests: cut.requests, upgraded: cut.upgraded }
  }
}

/** A drain (or a retiring generation) that reached its deadline: the warning, and the event. */
export function reportCut (listener: ListenerRef, log: FastifyBaseLogger | undefined, kind: 'stop' | 'restart', generation: number, { requests, upgraded }: Drained, limits: { timeout: number, upgradeTimeout?: number }, hooks: HookRunner): void {
  if (requests + upgraded === 0) return
  log?.warn({ cut: requests + upgraded, requests, upgraded, ...(kind === 'restart' ? { generation } : {}) }, cutMessage(kind, requests, upgraded, limits))
  publishCut(listener, generation, requests + upgraded, kind, upgraded)
  hooks.tell('onCut', { listener, name: listener.name, bind: listener.bind, generation, cut: requests + upgraded, upgraded, during: kind }, log)
}

/** The warning a cut gets, naming what was cut and which limit ran out. */
function cutMessage (kind: 'stop' | 'restart', requests: number, upgraded: number, limits: { timeout: number, upgradeTimeout?: number }): string {
  const what = [
    ...(requests > 0 ? [`${requests} request(s) in flight`] : []),
    ...(upgraded > 0 ? [`${upgraded} upgraded connection(s) (WebSocket) still open`] : [])
  ].join(' and ')
  if (kind === 'stop') return `drain deadline (${limits.timeout} ms) reached: cut ${what}`
  const why = [
    ...(requests > 0 ? [`restart drain deadline (${limits.timeout} ms)`] : []),
    ...(upgraded > 0 ? [`upgradeDrainTimeout (${limits.upgradeTimeout ?? 0} ms) and the goodbye's grace`] : [])
  ].join(' and ')
  return `${why} reached: cut ${what}`
}
