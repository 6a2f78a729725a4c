// The instance inject() uses while a listener is not running: built like a
// generation (build.ts), on a server of its own that never listens.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { NormalizedConfig } from '../config/config.ts'
import { fastifyOptions, makeInstance, type BuildContext } from './build.ts'
import type { ReadinessSource } from './health.ts'
import type { ListenerRef } from '../config/types.ts'

/** An instance for inject() while a listener is not running: it has a server of its own that never listens. */
export class MemoryApp {
  #pending: Promise<FastifyInstance> | undefined

  /** The instance, built (and ready) at the first call after a close. */
  get (ctx: BuildContext, config: NormalizedConfig, log: FastifyBaseLogger | undefined, listener: ReadinessSource & ListenerRef): Promise<FastifyInstance> {
    return (this.#pending ??= (async () => {
      const app = await makeInstance(ctx, config, fastifyOptions(config, log, undefined, 0), listener, 0)
      await app.ready()
      return app
    })())
  }

  async close (): Promise<void> {
    const pending = this.#pending
    this.#pending = undefined
    if (pending !== undefined) await (await pending.catch(() => undefined))?.close()
  }
}
