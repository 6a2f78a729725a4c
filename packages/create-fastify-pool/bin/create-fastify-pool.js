#!/usr/bin/env node
// The published package runs its compiled dist/; a source checkout runs the
// TypeScript sources through tsx, in this process (see fastify-pool-cli's bin).
import { existsSync } from 'node:fs'

const dist = new URL('../dist/main.js', import.meta.url)
if (existsSync(dist)) {
  await import(dist.href)
} else {
  await import('tsx')
  await import('../src/main.ts')
}
