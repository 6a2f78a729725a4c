#!/usr/bin/env node
// The published package runs its compiled dist/. A source checkout has no
// dist/ (and needs no build step): there the TypeScript sources run through
// tsx, registered in this process rather than by re-spawning node with flags,
// so that signals, the exit code and stdio stay those of this one process.
import { existsSync } from 'node:fs'
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

const dist = new URL('../dist/main.js', import.meta.url)
if (existsSync(dist)) {
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
