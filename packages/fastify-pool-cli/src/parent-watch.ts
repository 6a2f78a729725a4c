// A package manager is not a supervisor. `npm start` and `pnpm start` run
// the command under `sh -c`: a SIGTERM to the package manager reaches the
// command only when the script execs it (`exec fastify-pool start`, as the
// starter and the scaffolded app do); otherwise the package manager exits,
// the shell with it, and the command is left running, holding its ports,
// with init as its parent. So the command, when a package manager's script
// runs it (its parent is npm, pnpm, yarn or bun, or a shell of theirs),
// looks at its parent, and at the shell's parent when its parent is a
// shell, every WATCH_MS; once
// either is gone it drains and exits as on SIGTERM. Which process is a
// package manager is read from /proc (Linux): its variables are inherited by
// whatever its script starts, a test runner's children too. A parent's pid is
// compared with the one it had at the start, never with 1: under a
// subreaper an orphan's new parent is the subreaper.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

const WATCH_MS = 500
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'ash', 'ksh', 'busybox'])

/** The name of a package manager's program, as its process shows it (npm is a node script: its path; pnpm 12 is a program of its own). */
const MANAGERS = /^(npm|npx|pnpm|pnpx|yarn|yarnpkg|bun|bunx)(-cli)?(\.c?js)?$/

/** A process's parent, from /proc (Linux); undefined where it cannot be read (gone, or not Linux). */
function parentOf (pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    return Number.isInteger(ppid) ? ppid : undefined
  } catch {
    return undefined
  }
}

function commandOf (pid: number): string | undefined {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() } catch { return undefined }
}

function cmdline (pid: number): string[] {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(a => a !== '') } catch { return [] }
}

/** The package manager whose script runs this process, as it was when asked. */
export interface PackageManager {
  pid: number
  /** The shell between them, when the script did not exec the command. */
  shell: number | undefined
  /** This process's parent then: the package manager, or the shell. */
  parent: number
}

/**
 * The package manager whose script runs this process, if one does: its pid,
 * and the shell between them when the script did not exec the command.
 * Read from /proc (Linux); a package manager's variables alone (inherited by
 * everything a script starts, a test runner's children too) do not say so.
 * FASTIFY_POOL_PARENT_WATCH=off says no (a script that starts the command
 * in the background on purpose, `fastify-pool start &`).
 */
export function packageManager (env: NodeJS.ProcessEnv = process.env): PackageManager | undefined {
  if (env.FASTIFY_POOL_PARENT_WATCH === 'off') return undefined
  if (env.npm_lifecycle_event === undefined && env.npm_execpath === undefined) return undefined
  const parent = process.ppid
  const shell = SHELLS.has(commandOf(parent) ?? '') ? parent : undefined
  const pid = shell === undefined ? parent : parentOf(shell)
  if (pid === undefined) return undefined
  // npm sets its title ("npm start"); node /usr/bin/npm before it does; pnpm is its own program.
  const args = cmdline(pid).slice(0, 2).flatMap(a => a.split(' ')[0] ?? [])
  return args.some(a => MANAGERS.test(basename(a))) ? { pid, shell, parent } : undefined
}

/** Whether a package manager's script runs this process. */
export function underPackageManager (): boolean {
  return packageManager() !== undefined
}

/**
 * Call `gone` once when the package manager found at the start (`manager`,
 * read before anything loaded) is gone; nothing without one. Returns what
 * stops watching. The timer is unref'd: it never keeps the process alive.
 */
export function watchPackageManager (manager: PackageManager | undefined, gone: (why: string) => void): () => void {
  if (manager === undefined) return () => {}
  const { parent, shell } = manager
  const timer = setInterval(() => {
    const lost = process.ppid !== parent
      ? `its parent process ${parent} is gone`
      : shell !== undefined && parentOf(shell) !== manager.pid
        ? `the package manager (process ${manager.pid}) that ran it is gone`
        : undefined
    if (lost === undefined) return
    clearInterval(timer)
    gone(lost)
  }, WATCH_MS)
  timer.unref()
  return () => clearInterval(timer)
}
