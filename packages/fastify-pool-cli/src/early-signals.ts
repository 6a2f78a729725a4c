// Signals that arrive before the command has started anything. Until its
// drain handlers are in, a SIGINT or SIGTERM would kill the process in the
// middle of loading (Node's default): it is remembered instead, and the
// command stops before it starts anything, exiting as the signal would.
import { constants as osConstants } from 'node:os'

/** The exit code of a process ended by `signal` (128 + its number), as shells report it. */
export function signalExitCode (signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 15)
}

/** Hold SIGINT and SIGTERM until `release()`; `signal` is the first that came. */
export function holdEarlySignals (): { readonly signal: NodeJS.Signals | undefined, release: () => void } {
  let signal: NodeJS.Signals | undefined
  const onEarly = (s: NodeJS.Signals): void => { signal ??= s }
  process.on('SIGINT', onEarly)
  process.on('SIGTERM', onEarly)
  return {
    get signal () { return signal },
    release () {
      process.removeListener('SIGINT', onEarly)
      process.removeListener('SIGTERM', onEarly)
    }
  }
}
