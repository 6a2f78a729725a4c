#!/usr/bin/env node
// The published package runs its compiled dist/. A source checkout runs its
// TypeScript sources through tsx (no build step needed), registered in this
// process rather than by re-spawning node with flags, so that signals, the
// exit code and stdio stay those of this one process; once built (`pnpm
// test` builds first: a process of the command starts in less than half the
// CPU time so), it runs dist/ while dist/ is newer than every source file of
// this package and of the library, and the sources again as soon as one is
// edited, so a build is never stale.
import { existsSync, readdirSync, statSync } from 'node:fs'
import * as nodeModule from 'node:module'

// Loading the command takes a moment (and longer from sources): a SIGINT or
// SIGTERM meanwhile would kill the process outright, Node's default. The
// first one is remembered instead, for the command to honour once it has
// its own handlers (src/early-signals.ts).
const early = { signal: undefined, release () { process.removeListener('SIGINT', onEarly); process.removeListener('SIGTERM', onEarly) } }
function onEarly (signal) { early.signal ??= signal }
process.on('SIGINT', onEarly)
process.on('SIGTERM', onEarly)
// SIGUSR2 asks a running pool to upgrade (replace its process); until the
// command can, it is ignored rather than let end the process (its default).
process.on('SIGUSR2', () => {})
globalThis[Symbol.for('fastify-pool.early-signals')] = early

/** The newest modification time of the files under `dir` (0 if none). */
function newest (dir) {
  let time = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) time = Math.max(time, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs)
  }
  return time
}

/** Whether a package's dist/ holds its sources as they are: built after the last edit (tsc -b writes the build info), or shipped (no build info). */
function built (pkg) {
  if (!existsSync(new URL('dist', pkg))) return false
  const info = new URL('tsconfig.tsbuildinfo', pkg)
  if (!existsSync(info) || !existsSync(new URL('src', pkg))) return true
  return newest(new URL('src', pkg)) <= statSync(info).mtimeMs
}

const dist = new URL('../dist/main.js', import.meta.url)
// The library is built with it (tsc -b) in a checkout; installed, it is a dependency of its own.
const library = new URL('../../fastify-pool/', import.meta.url)
if (built(new URL('../', import.meta.url)) && (!existsSync(new URL('package.json', library)) || built(library))) {
  await import(dist.href)
} else {
  // The same module `node --import tsx` loads; importing it twice is harmless.
  await import('tsx')
  // It adds the "source" export condition, which `node --conditions=source`
  // would add, for our packages. In-thread hooks where Node has them
  // (module.register() is deprecated from Node 26); else registered after
  // tsx, so that it runs first.
  if (typeof nodeModule.registerHooks === 'function') {
    const { resolveSync } = await import('./source-condition.js')
    nodeModule.registerHooks({ resolve: resolveSync })
  } else {
    nodeModule.register('./source-condition.js', import.meta.url)
  }
  await import('../src/main.ts')
}
