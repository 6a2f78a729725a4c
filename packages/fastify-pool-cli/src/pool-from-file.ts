// A pool built from a configuration file, with `app.pool` available to its
// handler modules: what `fastify-pool start` runs, for tests and scripts too.
import { fileURLToPath } from 'node:url'
import { createPool, type Pool, type PoolOptions } from 'fastify-pool'
import { loadConfigFile, type LoadedConfig, type LoadOptions } from './config-file.ts'
import { wrapHandlers } from './with-pool.ts'

export interface PoolFromFileOptions extends LoadOptions {
  /** The pool's logger (see PoolOptions.logger). Default: none. */
  logger?: PoolOptions['logger']
}

export interface FilePool {
  pool: Pool
  loaded: LoadedConfig
  /** Re-read the file and apply it with pool.reload(); throws FST_POOL_VALIDATE (pool untouched) or the reload's error. */
  reload: () => ReturnType<Pool['reload']>
}

/** Load a configuration file and build its pool (not started). */
export async function createPoolFromFile (file: string | URL, options: PoolFromFileOptions = {}): Promise<FilePool> {
  const path = file instanceof URL ? fileURLToPath(file) : file
  const { logger, ...loadOptions } = options
  let loaded = await loadConfigFile(path, loadOptions)
  const owner = {}
  // Handlers reach the pool through this, once it exists.
  const current = (): Pool => pool
  const pool: Pool = createPool({ ...loaded.options, handlers: wrapHandlers(loaded.options.handlers, current, owner), ...(logger === undefined ? {} : { logger }) })
  return {
    pool,
    get loaded () { return loaded },
    async reload () {
      const next = await loadConfigFile(path, loadOptions)
      const report = await current().reload({ ...next.options, handlers: wrapHandlers(next.options.handlers, current, owner) })
      loaded = next
      return report
    }
  }
}
