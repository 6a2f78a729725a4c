// How the command learns that it is to stop, one way for a single process
// (start.ts) and for the primary of --workers (workers.ts): the first
// SIGTERM or SIGINT calls `first`, any later one `second`, and (where asked)
// an uncaught exception or unhandled rejection calls `error`. A handler is
// installed per signal for the whole life of the process, so a signal that
// arrives between two of them is never left to Node's default action.
// SIGHUP and SIGUSR2 are the command's own (reload, upgrade): not here.

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
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) { handlers.second(signal); return }
    stopping = true
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
