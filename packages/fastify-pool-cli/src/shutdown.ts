// How the command learns that it is to stop, one way for a single process
// (single.ts) and for the primary of --workers (primary.ts): the first
// SIGTERM or SIGINT calls `first`, any later one `second`, and (where asked)
// an uncaught exception or unhandled rejection calls `error`. A handler is
// installed per signal for the whole life of the process, so a signal that
// arrives between two of them is never left to Node's default action.
// SIGHUP and SIGUSR2 are the command's own (reload, upgrade): not here.
//
// The same signal again within REPEAT_MS is the same stop, not a second
// one: a Ctrl-C or a `kill -- -PGID` reaches every process of the group at
// once, and a package manager that execs the command (npm) passes its copy
// on too, so one stop arrives twice within a millisecond or so.

/** How long the same signal again counts as the same stop (ms). */
export const REPEAT_MS = 500

export interface StopSignals {
  /** The first SIGTERM or SIGINT. */
  first: (signal: NodeJS.Signals) => void
  /** Every one after it (the process is stopping already). */
  second: (signal: NodeJS.Signals) => void
  /** An uncaught exception or an unhandled rejection; left to Node when absent. */
  error?: (err: unknown, stopping: boolean) => void
}

/** Install the handlers; returns what removes them. */
export function onStopSignals (handlers: StopSignals): () => void {
  let stopping = false
  let first: { signal: NodeJS.Signals, at: number } | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = performance.now()
    if (first !== undefined && first.signal === signal && now - first.at < REPEAT_MS) return
    if (stopping) { handlers.second(signal); return }
    stopping = true
    first = { signal, at: now }
    handlers.first(signal)
  }
  const { error } = handlers
  const onError = (err: unknown): void => {
    const was = stopping
    stopping = true
    error?.(err, was)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  if (error !== undefined) {
    process.on('uncaughtException', onError)
    process.on('unhandledRejection', onError)
  }
  return () => {
    process.removeListener('SIGTERM', onSignal)
    process.removeListener('SIGINT', onSignal)
    process.removeListener('uncaughtException', onError)
    process.removeListener('unhandledRejection', onError)
  }
}

/**
 * The stop signals of a process that runs a pool (one process, a worker):
 * the first SIGTERM or SIGINT, or an uncaught error, calls `stop`; another
 * one, or an uncaught error while stopping, exits 1 at once.
 */
export function stopOnSignals (log: { warn: (fields: object, message: string) => void, error: (fields: object, message: string) => void }, stop: (cause: { signal?: NodeJS.Signals, err?: unknown }) => void): () => void {
  return onStopSignals({
    first: (signal) => stop({ signal }),
    second: (signal) => {
      log.warn({ signal }, `second ${signal}: exiting now without waiting for the drain`)
      process.exit(1)
    },
    error: (err, stopping) => {
      if (!stopping) { stop({ err }); return }
      log.error({ err }, 'uncaught error while stopping: exiting now')
      process.exit(1)
    }
  })
}
