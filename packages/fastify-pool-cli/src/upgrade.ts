// `fastify-pool upgrade` (SIGUSR2, POST /pool/upgrade): replace the whole
// process without closing a port. The running process starts a successor
// with the same command line (the `node` its command names now, or --node),
// which reads the pool file and handler modules afresh, and hands it every
// listening socket as an extra stdio descriptor, named by bind in
// FASTIFY_POOL_LISTEN_FDS. The successor listens on them (no bind, so no
// EADDRINUSE; a unix socket file stays as it is), and says "ready" over the
// IPC channel once every listener is up. Only then does this process stop
// accepting and run its shutdown sequence as a hand-off (requests on its open
// connections are answered with Connection: close), then exit 0. A successor
// that fails, exits or is not ready in time is stopped, and this process
// serves on, unchanged.
//
// Why descriptors in stdio rather than subprocess.send(message, server): the
// kernel's socket is shared as it is, before the successor runs any code, for
// TCP and unix sockets alike and whatever Node version the successor runs; a
// server sent over IPC is re-created by the receiving Node from its own
// handle types, and only after the successor's IPC is up.
import { spawn, type ChildProcess } from 'node:child_process'
import { channel } from 'node:diagnostics_channel'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import { isatty } from 'node:tty'
import { CHANNELS, type Pool, type UpgradeEvent } from 'fastify-pool'
import { listeningDescriptors } from 'fastify-pool/sockets'
import { HANDOFF_ENV } from './inherited.ts'
import { underPackageManager } from './parent-watch.ts'
import type { Supervisor } from './supervisor.ts'

/** The variable that tells a successor it replaces a process: the predecessor's pid. */
export const PREDECESSOR_ENV = 'FASTIFY_POOL_PREDECESSOR'
/** Upgrades counted so far by this line of processes, handed on: `{"ok":N,"failed":M}`. */
export const UPGRADES_ENV = 'FASTIFY_POOL_UPGRADES'

/** Why an upgrade is refused with --workers when the primary holds no socket (Node's server handles are not usable). */
export const WORKERS_UPGRADE = "the workers share their ports through node:cluster's primary (Node's server handles are not usable here): it holds no socket to hand on; a rolling reload (fastify-pool reload) replaces the workers"

/** How long a successor may take to be ready, by default (ms). */
export const UPGRADE_TIMEOUT = 60_000

const upgradeChannel = channel(CHANNELS.upgrade)

/** What the successor says on the IPC channel. */
type SuccessorMessage =
  | { 'fastify-pool': 'upgrade-ready', pid: number, node: string }
  | { 'fastify-pool': 'upgrade-failed', reason: string }

/** An upgrade refused or failed; `statusCode` for the control API's answer. */
export class UpgradeError extends Error {
  readonly statusCode: number
  constructor (message: string, statusCode: number) {
    super(message)
    this.statusCode = statusCode
  }
}

export interface UpgradeOptions {
  /** The node binary to run the successor with (default: the one the command line names, found again). */
  node?: string
  /** Milliseconds the successor may take to be ready (default UPGRADE_TIMEOUT). */
  timeout?: number
}

export interface UpgradeResult { pid: number, previous: number, node: string, version: string, duration: number }

/** Upgrades counted so far in this line of processes (handed on from predecessor to successor). */
const counts = readCounts()

function readCounts (): { ok: number, failed: number } {
  const text = process.env[UPGRADES_ENV]
  delete process.env[UPGRADES_ENV]
  try {
    const parsed = JSON.parse(text ?? '{}') as { ok?: unknown, failed?: unknown }
    return { ok: Number.isInteger(parsed.ok) ? parsed.ok as number : 0, failed: Number.isInteger(parsed.failed) ? parsed.failed as number : 0 }
  } catch {
    return { ok: 0, failed: 0 }
  }
}

/** Upgrades so far, by result (the counter `fastify_pool_upgrades_total` reads them). */
export function upgradeCounts (): Readonly<{ ok: number, failed: number }> { return counts }

/**
 * The node binary a new process runs: the one given, else the one the
 * command line named (`process.argv0`), looked up again on PATH so that a
 * Node installed since is the one that runs, else this process's own.
 */
export function successorNode (given?: string): string {
  if (given !== undefined) return checkExecutable(resolve(given))
  const named = process.argv0
  if (named.includes('/')) return isExecutable(resolve(named)) ? resolve(named) : process.execPath
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue
    const candidate = join(dir, named)
    if (isExecutable(candidate)) return candidate
  }
  return process.execPath
}

function isExecutable (file: string): boolean {
  try { accessSync(file, constants.X_OK); return true } catch { return false }
}

function checkExecutable (file: string): string {
  if (!isExecutable(file)) throw new UpgradeError(`--node ${file}: no executable file there`, 400)
  return file
}

export interface UpgraderHooks {
  /** The phase, which says whether an upgrade may begin (supervisor.ts). */
  supervisor: Pick<Supervisor<unknown>, 'upgradeRefusal' | 'beginUpgrade' | 'upgradeFailed'>
  /**
   * The listening sockets to hand on, bind → descriptor (a single process:
   * its listeners'; the primary of --workers: those it holds for its
   * workers), or why they cannot be.
   */
  sockets: () => Map<string, number> | string
  /** Called once the successor is ready: stop this process as a hand-off. */
  handOver: (successor: ChildProcess) => void
  /** The drain deadline, to bound how long a failed successor may take to stop. */
  stopTimeout: () => number
  /** The successor failed: this process serves on (it writes its pid file again: a successor stopped after it wrote its own removed it). */
  failed?: () => void
  log: { info: (fields: object, message: string) => void, warn: (fields: object, message: string) => void, error: (fields: object, message: string) => void }
}

/**
 * Why this process must not be replaced where it runs, if it must not. Under
 * a package manager, the package manager ends when this process does. In a
 * terminal the successor would not be the terminal's job: the shell takes
 * the terminal back when the old process exits, Ctrl-C no longer reaches
 * the successor, its log goes to a terminal that may be gone, and the
 * terminal's SIGHUP reaches it as a reload. As a container's pid 1, or the
 * child of its init (tini and the like), the old process's exit ends the
 * container, successor and all.
 */
export function placeRefusal (): string | undefined {
  if (underPackageManager()) return 'this process was started by a package manager (npm start, pnpm start, npx): the package manager exits when this process hands over, and whatever runs it (a container, systemd, a terminal) takes the pool for stopped; to upgrade, run the command itself (node_modules/.bin/fastify-pool start) under a supervisor such as systemd, or reload in place (fastify-pool reload)'
  const init = containerInit()
  if (init !== undefined) return `this process runs in a container whose init is ${init}: when the old process exits after the hand-over, the container ends, successor and all; roll out a new container instead, or reload in place (fastify-pool reload)`
  if (process.pid === 1) return 'this process is pid 1 (a container\'s init): its exit after the hand-over would end the container, successor and all; roll out a new container instead, or reload in place (fastify-pool reload)'
  if (isatty(0) || isatty(1) || isatty(2)) return 'this pool runs in a terminal, and the new process would not be the terminal\'s job (Ctrl-C would no longer reach it, and it would outlive the terminal): in a terminal, reload instead (fastify-pool reload, SIGHUP or --watch); to upgrade, run it under a supervisor such as systemd, or detached from the terminal (fastify-pool start < /dev/null > pool.log 2>&1 &)'
  return undefined
}

/** A container's init that ends the container with its child (tini, docker run --init, dumb-init, podman's catatonit), as pid 1 of this process's namespace. */
function containerInit (): string | undefined {
  if (process.pid === 1) return undefined
  try {
    const name = readFileSync('/proc/1/comm', 'utf8').trim()
    return ['tini', 'docker-init', 'dumb-init', 'catatonit'].includes(name) ? name : undefined
  } catch {
    return undefined
  }
}

/** The running command's side of an upgrade: one at a time, when the supervisor's phase allows it. */
export class Upgrader {
  readonly #hooks: UpgraderHooks
  /** The successor being started, until it is ready or stopped. */
  #starting: ChildProcess | undefined
  #aborted = false

  constructor (hooks: UpgraderHooks) {
    this.#hooks = hooks
  }

  upgrade (options: UpgradeOptions = {}): Promise<UpgradeResult> {
    // Not now (the phase), not here (a terminal, pid 1), or not possible (no sockets to hand on).
    const refusal = this.#hooks.supervisor.upgradeRefusal() ?? placeRefusal()
    const sockets = this.#hooks.sockets()
    if (refusal !== undefined || typeof sockets === 'string') {
      const reason = refusal ?? (sockets as string)
      this.#hooks.log.warn({ reason }, `upgrade refused: ${reason}`)
      return Promise.reject(new UpgradeError(reason, refusal === undefined ? 501 : 409))
    }
    const began = Date.now()
    const node = (() => { try { return successorNode(options.node) } catch (err) { return err as UpgradeError } })()
    if (node instanceof UpgradeError) return Promise.reject(node)
    this.#hooks.supervisor.beginUpgrade()
    return this.#run(node, sockets, options.timeout ?? UPGRADE_TIMEOUT, began)
      .then((result) => {
        // Counted and published by the successor, which serves from now on.
        this.#hooks.log.info({ successor: result.pid, node, duration: result.duration }, `upgrade: process ${result.pid} serves every listener; this one (${process.pid}) hands over and exits`)
        return result
      }, (err: UpgradeError & { pid?: number }) => {
        counts.failed++
        this.#hooks.supervisor.upgradeFailed()
        this.#hooks.failed?.()
        this.#hooks.log.error({ reason: err.message, node }, `upgrade failed, still serving from this process: ${err.message}`)
        publishUpgrade({ result: 'failed', previous: process.pid, pid: err.pid, node, reason: err.message, duration: Date.now() - began })
        throw err
      })
  }

  async #run (node: string, sockets: Map<string, number>, timeout: number, began: number): Promise<UpgradeResult> {
    const binds = [...sockets.keys()]
    const fds = [...sockets.values()]
    // The successor's descriptors: 0-2 as this process's, 3 the IPC channel, then one per listener.
    const named = Object.fromEntries(binds.map((bind, i) => [bind, 4 + i]))
    this.#hooks.log.info({ node, listeners: binds }, `upgrade: starting a successor with ${node}`)
    const child = spawn(node, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc', ...fds],
      env: { ...process.env, [HANDOFF_ENV]: JSON.stringify(named), [PREDECESSOR_ENV]: String(process.pid), [UPGRADES_ENV]: JSON.stringify({ ok: counts.ok + 1, failed: counts.failed }) }
    })
    this.#starting = child
    const outcome = await new Promise<SuccessorMessage | { exit: string } | { timeout: true } | { error: Error }>((resolve) => {
      const timer = setTimeout(() => resolve({ timeout: true }), timeout)
      timer.unref()
      const done = (value: SuccessorMessage | { exit: string } | { timeout: true } | { error: Error }): void => {
        clearTimeout(timer)
        child.removeListener('message', onMessage)
        resolve(value)
      }
      const onMessage = (message: SuccessorMessage): void => {
        const kind = message?.['fastify-pool']
        if (kind === 'upgrade-ready' || kind === 'upgrade-failed') done(message)
      }
      child.on('message', onMessage)
      child.once('error', (error) => done({ error }))
      child.once('exit', (code, signal) => done({ exit: signal === null ? `exited with code ${code ?? '?'}` : `was killed by ${signal}` }))
    })
    this.#starting = undefined
    if (this.#aborted) {
      await this.#stopSuccessor(child)
      throw Object.assign(new UpgradeError('the pool is stopping: the successor was stopped', 409), { pid: child.pid })
    }
    if ('fastify-pool' in outcome && outcome['fastify-pool'] === 'upgrade-ready') {
      // The successor serves: this process no longer needs the channel (nor waits for it).
      child.disconnect()
      child.unref()
      const result = { pid: outcome.pid, previous: process.pid, node, version: outcome.node, duration: Date.now() - began }
      this.#hooks.handOver(child)
      return result
    }
    const reason = 'error' in outcome
      ? `the successor could not be started: ${outcome.error.message}`
      : 'exit' in outcome
        ? `the successor ${outcome.exit} before it was ready`
        : 'timeout' in outcome
          ? `the successor was not ready within ${timeout} ms`
          : `the successor could not start: ${outcome.reason}`
    await this.#stopSuccessor(child)
    throw Object.assign(new UpgradeError(reason, 502), { pid: child.pid })
  }

  /**
   * The pool is stopping for good (SIGTERM, SIGINT): a successor still
   * starting must not outlive it. Stopped at once; its ready, if it comes,
   * is ignored.
   */
  abort (): Promise<void> {
    this.#aborted = true
    const child = this.#starting
    return child === undefined ? Promise.resolve() : this.#stopSuccessor(child).catch(() => {})
  }

  /** A successor that will not serve: SIGTERM (it drains what it accepted), then SIGKILL past the drain deadline. */
  async #stopSuccessor (child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const killer = setTimeout(() => child.kill('SIGKILL'), this.#hooks.stopTimeout() + 5000)
    killer.unref()
    await exited
    clearTimeout(killer)
  }
}

/** The sockets of a single process's listeners, to hand on, or why they cannot be. */
export function poolSockets (pool: Pool): Map<string, number> | string {
  return listeningDescriptors(pool) ?? `this Node (${process.version}) does not tell a server's descriptor (server._handle.fd): the sockets cannot be handed over`
}

/** Publish an upgrade (with the line's counts), in the process that serves after it. */
export function publishUpgrade (event: Omit<UpgradeEvent, 'counts'>): void {
  if (upgradeChannel.hasSubscribers) upgradeChannel.publish({ ...event, counts: { ...counts } })
}

/** In a worker: publish an upgrade its primary did (the primary is the process replaced; the workers serve). */
export function relayUpgrade (event: UpgradeEvent): void {
  if (upgradeChannel.hasSubscribers) upgradeChannel.publish(event)
}

/**
 * The successor's side: whether this process replaces another, and how it
 * tells it that it is ready, or why it cannot be.
 */
export interface Predecessor {
  pid: number
  ready: () => void
  failed: (reason: string) => void
  /** Resolves once the predecessor let go of the channel (it is stopping). */
  released: Promise<void>
}

export function predecessor (): Predecessor | undefined {
  const text = process.env[PREDECESSOR_ENV]
  delete process.env[PREDECESSOR_ENV]
  if (text === undefined || process.send === undefined) return undefined
  const pid = Number(text)
  // The channel must not keep this process alive once it serves.
  process.channel?.unref()
  const released = new Promise<void>(resolve => process.once('disconnect', () => resolve()))
  const say = (message: SuccessorMessage): void => { try { process.send?.(message) } catch {} }
  return {
    pid,
    released,
    ready: () => say({ 'fastify-pool': 'upgrade-ready', pid: process.pid, node: process.version }),
    failed: (reason) => { say({ 'fastify-pool': 'upgrade-failed', reason }); process.disconnect?.() }
  }
}
