// Child processes for the benchmarks, driven over the IPC channel. The server
// under test always runs in a child so that it never shares an event loop (or,
// when pinned, a core) with the load generator in the parent.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { fileURLToPath } from 'node:url'

interface Call { id: number, cmd: string, args: unknown }
interface Reply { id: number, ok: boolean, value?: unknown, error?: string }

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const live = new Set<ChildProcess>()

// A crash of the parent must not leave servers behind.
process.once('exit', () => { for (const c of live) c.kill('SIGKILL') })

let canPin: boolean | undefined
/** taskset is what keeps the server and the load generator on different cores. */
export function pinningAvailable (): boolean {
  canPin ??= spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0
  return canPin
}

/** Pin this process (all its threads) to one core. */
export function pinSelf (cpu: number): boolean {
  if (!pinningAvailable()) return false
  return spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' }).status === 0
}

/** Node flags that write a CPU profile of the child when it exits, or none. */
export function profileArgs (dir: string | undefined, name: string): string[] {
  return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${process.pid}.cpuprofile`]
}

export interface SpawnOptions {
  /** Core to pin the child to (ignored without taskset). */
  cpu?: number | undefined
  /** Extra node flags, e.g. --cpu-prof or --expose-gc. */
  nodeArgs?: string[]
  /** Milliseconds to wait for the child to say it is ready. */
  readyTimeout?: number
}

export class Child {
  readonly #proc: ChildProcess
  readonly #pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  #next = 1
  #exited: Promise<number | null>
  readonly name: string

  private constructor (proc: ChildProcess, name: string) {
    this.#proc = proc
    this.name = name
    this.#exited = new Promise(resolve => proc.once('exit', (code) => { live.delete(proc); resolve(code) }))
    proc.on('message', (msg: Reply) => {
      const waiter = this.#pending.get(msg.id)
      if (waiter === undefined) return
      this.#pending.delete(msg.id)
      if (msg.ok) waiter.resolve(msg.value)
      else waiter.reject(new Error(`${name}: ${msg.error ?? 'failed'}`))
    })
    proc.once('exit', (code, signal) => {
      for (const w of this.#pending.values()) w.reject(new Error(`${name} exited (${signal ?? code}) before replying`))
      this.#pending.clear()
    })
  }

  /** Start `bench/<script>` under the same loader flags as this process and wait for it to be ready. */
  static async spawn (script: string, args: readonly string[], options: SpawnOptions = {}): Promise<Child> {
    const nodeArgs = [...process.execArgv, ...(options.nodeArgs ?? [])]
    const file = fileURLToPath(new URL(script, import.meta.url))
    const pin = options.cpu !== undefined && pinningAvailable()
    const [command, argv] = pin
      ? ['taskset', ['-c', String(options.cpu), process.execPath, ...nodeArgs, file, ...args]]
      : [process.execPath, [...nodeArgs, file, ...args]]
    const proc = spawn(command as string, argv as string[], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    live.add(proc)
    const child = new Child(proc, `${script} ${args.join(' ')}`.trim())
    await child.#wait(0, options.readyTimeout ?? 30_000)
    return child
  }

  get pid (): number | undefined { return this.#proc.pid }

  /** Run a command in the child and wait (bounded) for its answer. */
  call<T = unknown> (cmd: string, args: unknown = {}, timeout = 60_000): Promise<T> {
    const id = this.#next++
    const promise = this.#wait(id, timeout)
    this.#proc.send({ id, cmd, args } satisfies Call)
    return promise as Promise<T>
  }

  /**
   * Ask the child to stop what it runs and let go of the IPC channel; it must
   * then exit by itself. Returns false when it had to be killed (a leak).
   */
  async close (timeout = 10_000): Promise<boolean> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return true
    try {
      await this.call('exit', {}, timeout)
    } catch {}
    let timer: NodeJS.Timeout | undefined
    const gone = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>(resolve => { timer = setTimeout(resolve, timeout, false); timer.unref() })
    ])
    clearTimeout(timer)
    if (!gone) {
      this.#proc.kill('SIGKILL')
      await this.#exited
    }
    return gone
  }

  #wait (id: number, timeout: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name}: no answer within ${timeout} ms`))
      }, timeout)
      timer.unref()
      this.#pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
    })
  }
}

/** Kill every child still running (after an error in the parent). */
export async function killAll (): Promise<void> {
  await Promise.all([...live].map(c => new Promise<void>(resolve => {
    c.once('exit', () => resolve())
    c.kill('SIGKILL')
  })))
}

export type Methods = Record<string, (args: any) => unknown>

let session: Session | undefined

/**
 * Every child can profile a window of its life (the measured runs, not the
 * start-up or the warm-up): profileStart, then profileStop({ file }).
 */
const PROFILER: Methods = {
  profileStart: async () => {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.start')
  },
  profileStop: async ({ file }: { file: string }) => {
    if (session === undefined) throw new Error('profileStart was not called')
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    session = undefined
    writeFileSync(file, JSON.stringify(profile))
    return file
  }
}

/**
 * Child side: answer the parent's commands. `exit` runs the cleanup given,
 * then lets go of the IPC channel: from there the process must exit by itself,
 * which is how the benchmarks notice a leaked timer or socket.
 */
export function serve (methods: Methods, cleanup: () => Promise<void> | void = () => {}): void {
  // The parent may be gone (interrupted): a reply nobody reads is no error.
  const send = (reply: Reply): void => { if (process.connected) process.send?.(reply, undefined, undefined, () => {}) }
  let exiting = false
  process.on('message', (msg: Call) => {
    if (msg.cmd === 'exit') {
      exiting = true
      Promise.resolve().then(cleanup).then(
        () => send({ id: msg.id, ok: true }),
        (err: Error) => send({ id: msg.id, ok: false, error: err.message })
      ).finally(() => process.disconnect())
      return
    }
    const method = methods[msg.cmd] ?? PROFILER[msg.cmd]
    if (method === undefined) return send({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` })
    Promise.resolve().then(() => method(msg.args)).then(
      (value) => send({ id: msg.id, ok: true, value }),
      (err: Error) => send({ id: msg.id, ok: false, error: err.stack ?? String(err) })
    )
  })
  // The parent went away without asking: nothing will ever stop this process.
  // It may have gone while this process was still starting its server.
  if (!process.connected) process.exit(1)
  process.once('disconnect', () => { if (!exiting) process.exit(1) })
  send({ id: 0, ok: true, value: 'ready' })
}
