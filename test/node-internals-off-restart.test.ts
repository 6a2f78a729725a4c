// The restart, WebSocket and HTTP/2 suites pass with
// FASTIFY_POOL_NODE_INTERNALS=off: on the conservative paths
// (node-internals.ts) a restart and a stop still lose nothing.
import { test } from 'node:test'
import { FALLBACK_RUN, passWithInternalsOff } from './fixtures/internals-off.ts'

test('on the conservative paths a restart and a stop still lose nothing: the restart, websocket-stop and http2 suites pass with FASTIFY_POOL_NODE_INTERNALS=off', { skip: FALLBACK_RUN && 'already the fallback run', timeout: 180_000 }, async () => {
  await passWithInternalsOff(['restart', 'websocket-stop', 'http2'], 23)
})
