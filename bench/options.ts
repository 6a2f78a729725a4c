// Parameters of a benchmark run: the quick and full presets, and what each
// suite returns to the runner.

export interface BenchOptions {
  mode: 'quick' | 'full'
  /** Pin the server to core 1 and the load generator to core 0 (needs taskset and 2 cores). */
  pin: boolean
  /** Folder for --cpu-prof profiles of the servers under test, or undefined. */
  profileDir: string | undefined
  overhead: { rounds: number, duration: number, warmup: number, connections: number, pipelining: number, loads?: string[] }
  restart: { rounds: number, duration: number, listeners: number, gap: number, deadline: number, connections: number, pipelining: number }
  scale: { sizes: number[], runs: number, holdMs: number, selectSizes: number[] }
  drain: { idle: number[], holds: number[], runs: number }
  modes: { processes: number, warmup: number, duration: number }
  workers: { rounds: number, duration: number, warmup: number, connections: number, pipelining: number }
  websocket: { rounds: number, duration: number, warmup: number, connections: number, inFlight: number, held: number, restarts: number, restartSeconds: number }
  upgrade: { rounds: number, duration: number, upgrades: number, connections: number }
  /** Floods at `levels` × capacity for `duration` s each; probes every `interval` ms; `timeout` ms for both; whole seconds (wrk takes no fractions). */
  overload: { levels: number[], duration: number, warmup: number, capacity: number, interval: number, timeout: number }
}

export const PRESETS: Record<'quick' | 'full', Omit<BenchOptions, 'mode' | 'pin' | 'profileDir'>> = {
  // Checks that the harness works; too short for figures worth quoting.
  quick: {
    overhead: { rounds: 1, duration: 1, warmup: 0.5, connections: 100, pipelining: 10 },
    restart: { rounds: 1, duration: 1.5, listeners: 2, gap: 200, deadline: 5000, connections: 100, pipelining: 10 },
    scale: { sizes: [1, 10, 100], runs: 1, holdMs: 200, selectSizes: [100, 1000, 10_000] },
    drain: { idle: [0, 10, 100, 1000], holds: [200], runs: 2 },
    modes: { processes: 2, warmup: 0.5, duration: 1 },
    workers: { rounds: 1, duration: 1, warmup: 0.5, connections: 100, pipelining: 10 },
    websocket: { rounds: 1, duration: 1, warmup: 0.5, connections: 50, inFlight: 10, held: 200, restarts: 3, restartSeconds: 2 },
    upgrade: { rounds: 1, duration: 2, upgrades: 2, connections: 20 },
    overload: { levels: [1, 20], duration: 2, warmup: 1, capacity: 1, interval: 50, timeout: 2000 }
  },
  full: {
    overhead: { rounds: 5, duration: 5, warmup: 2, connections: 100, pipelining: 10 },
    restart: { rounds: 3, duration: 5, listeners: 2, gap: 200, deadline: 5000, connections: 100, pipelining: 10 },
    scale: { sizes: [1, 10, 100, 500], runs: 5, holdMs: 200, selectSizes: [100, 1000, 10_000] },
    drain: { idle: [0, 10, 100, 1000], holds: [200, 1000], runs: 5 },
    modes: { processes: 12, warmup: 1.5, duration: 2 },
    workers: { rounds: 4, duration: 5, warmup: 1, connections: 100, pipelining: 10 },
    websocket: { rounds: 4, duration: 5, warmup: 1, connections: 50, inFlight: 10, held: 1000, restarts: 10, restartSeconds: 10 },
    upgrade: { rounds: 2, duration: 5, upgrades: 10, connections: 20 },
    overload: { levels: [1, 2, 5, 20], duration: 10, warmup: 1, capacity: 3, interval: 50, timeout: 2000 }
  }
}

/** What a suite hands back: markdown for BENCHMARKS.md (also printed). */
export interface Section {
  title: string
  /** Parameters in one line. */
  params: string
  body: string
  /** Targets missed, one line each, for the summary. */
  misses: string[]
}

export type Log = (line: string) => void
