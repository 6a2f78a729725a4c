// The drain suites pass with FASTIFY_POOL_NODE_INTERNALS=off: on the
// conservative paths (node-internals.ts) a drain still loses nothing.
import { test } from 'node:test'
import { FALLBACK_RUN, passWithInternalsOff } from './fixtures/internals-off.ts'

test('on the conservative paths the drain still loses nothing: the drain, drain-complete, drain-clients and pipelining suites pass with FASTIFY_POOL_NODE_INTERNALS=off', { skip: FALLBACK_RUN && 'already the fallback run', timeout: 180_000 }, async () => {
  await passWithInternalsOff(['drain', 'drain-complete', 'drain-clients', 'pipelining'], 18)
})
