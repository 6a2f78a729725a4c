// A pool built from a configuration file, with `app.pool` available to its
// handler modules: what `fastify-pool start` runs, for tests and scripts too.
import { channel } from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import { CHANNELS, createPool, type CanaryOptions, type ControlOptions, type Handler, type LogLevel, type Pool, type PoolOptions, type ReloadReport } from 'fastify-pool'
import { loadConfigFile, type LoadedConfig, type LoadOptions } from './config-file.ts'
import { wrapHandlers } from './with-pool.ts'
import { inheritedSockets } from './inherited.ts'

const reloadChannel = channel(CHANNELS.reload)

export interface PoolFromFileOptions extends LoadOptions {
  /** The pool's logger (see PoolOptions.logger). Default: none. */
  logger?: PoolOptions['logger']
  /** Overrides of the file's control section (its reload and status: the command's workers ask the primary). */
  control?: Pick<ControlOptions, 'reload' | 'status' | 'upgrade' | 'act'>
  /** What the metrics route serves instead of the pool's own (the command's workers: the cluster's sum). */
  metricsExposition?: () => Promise<string>
  /** `--log-level`: in place of the file's `defaults.logLevel`, on every load (a listener that sets its own keeps it). */
  logLevel?: string
}

export interface FilePool {
  pool: Pool
  loaded: LoadedConfig
  /**
   * Re-read the file and apply it with pool.reload(); throws FST_POOL_VALIDATE
   * (pool untouched) or the reload's error. `text`: the file's text as
   * someone else read it (a worker told by its primary), not read again.
   */
  reload: (how?: { canary?: number | CanaryOptions, text?: string }) => ReturnType<Pool['reload']>
}

/** Load a configuration file and build its pool (not started). */
export async function createPoolFromFile (file: string | URL, options: PoolFromFileOptions = {}): Promise<FilePool> {
  const path = file instanceof URL ? fileURLToPath(file) : file
  const { logger, control: _control, metricsExposition: _exposition, logLevel, text, ...given } = options
  const owner = {}
  // Handlers reach the pool through this, once it exists.
  const current = (): Pool => pool
  // What the command adds to the file's options, resolved with them (once per load).
  const plug = (file: PoolOptions): PoolOptions => ({
    ...file,
    ...(file.control === undefined ? {} : { control: { reload: async (how?: { canary?: number }) => filePool.reload(how), ...file.control, ...options.control } }),
    ...(file.metrics === undefined || file.metrics === false || options.metricsExposition === undefined
      ? {}
      : { metrics: { ...(file.metrics === true ? {} : file.metrics), exposition: options.metricsExposition } }),
    handlers: wrapHandlers(file.handlers as Record<string, Handler> | undefined, current, owner),
    // The sockets this process was given (systemd's, a predecessor's, its primary's): inherited.ts.
    sockets: inheritedSockets(),
    ...(logger === undefined ? {} : { logger }),
    ...(logLevel === undefined ? {} : { defaults: { ...file.defaults, logLevel: logLevel as LogLevel } })
  })
  const loadOptions = { ...given, plug }
  // A text given is for the first load only: a reload reads the file.
  let loaded = await loadConfigFile(path, { ...loadOptions, ...(text === undefined ? {} : { text }) })
  const pool: Pool = createPool(loaded.pool)
  // A pool's metrics and control API are set when it is made: a reload cannot change them.
  const fixedAtStart = JSON.stringify([loaded.options.metrics, loaded.options.control])
  const filePool: FilePool = {
    pool,
    get loaded () { return loaded },
    async reload (how = {}) {
      let next: LoadedConfig
      try {
        next = await loadConfigFile(path, { ...loadOptions, ...(how.text === undefined ? {} : { text: how.text }) })
      } catch (err) {
        // Refused before it reaches the pool: published as the pool's failed reload all the same.
        if (reloadChannel.hasSubscribers) reloadChannel.publish({ pool: current(), error: err })
        throw err
      }
      const { metrics, control } = next.options
      if (JSON.stringify([metrics, control]) !== fixedAtStart) {
        pool.logger?.warn('the metrics or control settings changed: they take effect at the next start; the running pool keeps its own')
      }
      // In force from the moment the pool applies it: the reload event, which
      // the command reads the file's other sections from (monitor, log level,
      // drain deadline), fires inside pool.reload().
      const previous = loaded
      loaded = next
      let report: ReloadReport
      try {
        const { servers, defaults, handlers, baseDir } = next.pool
        report = await current().reload({ servers: [...servers], defaults, ...(handlers === undefined ? {} : { handlers }), ...(baseDir === undefined ? {} : { baseDir }) }, how.canary === undefined ? {} : { canary: how.canary })
      } catch (err) {
        loaded = previous
        throw err
      }
      await restartControlListener(current(), loaded)
      return report
    }
  }
  return filePool
}

/**
 * A reload never leaves the control listener stopped: after `fastify-pool
 * stop --force` it is the one way back in short of a new process (SIGHUP).
 */
async function restartControlListener (pool: Pool, loaded: LoadedConfig): Promise<void> {
  const control = loaded.options.control
  if (control === undefined) return
  const listener = pool.load(control.listener ?? 'admin')
  if (listener === undefined || listener.config.disabled === true || listener.state !== 'stopped') return
  pool.logger?.info({ listener: listener.name }, 'the reload starts the control listener again')
  await listener.start()
}
