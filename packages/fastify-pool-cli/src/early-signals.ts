// Signals that arrive before the command has started anything. Until its
// drain handlers are in, a SIGINT or SIGTERM would kill the process in the
// middle of loading (Node's default): it is remembered instead, and the
// command stops before it starts anything. The bin holds them from its first
// line, while the command's modules load; this module takes over from it.

interface Holder { readonly signal: NodeJS.Signals | undefined, release: () => void }

const BIN_KEY = Symbol.for('fastify-pool.early-signals')

/** The bin's holder, taken once: its handlers are removed, and the signal it saw (if any) returned. */
function fromBin (): NodeJS.Signals | undefined {
  const store = globalThis as Record<symbol, Holder | undefined>
  const holder = store[BIN_KEY]
  if (holder === undefined) return undefined
  store[BIN_KEY] = undefined
  holder.release()
  return holder.signal
}

/** Hold SIGINT and SIGTERM until `release()`; `signal` is the first that came (since the bin started). */
export function holdEarlySignals (): Holder {
  let signal: NodeJS.Signals | undefined
  const onEarly = (s: NodeJS.Signals): void => { signal ??= s }
  process.on('SIGINT', onEarly)
  process.on('SIGTERM', onEarly)
  signal = fromBin()
  return {
    get signal () { return signal },
    release () {
      process.removeListener('SIGINT', onEarly)
      process.removeListener('SIGTERM', onEarly)
    }
  }
}

/**
 * Commands that start nothing (ps, validate...) let a signal do what it
 * does by default: the bin's handlers are removed, and a signal that came
 * while the command loaded is raised again.
 */
export function releaseEarlySignals (): void {
  const signal = fromBin()
  if (signal !== undefined) process.kill(process.pid, signal)
}
