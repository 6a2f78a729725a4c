// 20 keep-alive clients send back to back while stop() runs, over HTTP, HTTPS
// and HTTP/2. Each outcome must be a full 200, a 503 with Connection: close
// (HTTP/2: a stream refused by GOAWAY), or a new connection refused. Never a
// reset, a hang-up or a truncated body. Repeated, since a race shows only
// sometimes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { oneRound, type Tally } from './fixtures/drain-clients.ts'

const CLIENTS = 20
const ROUNDS = 20

for (const protocol of ['http', 'https', 'h2'] as const) {
  test(`${CLIENTS} keep-alive clients sending while stop() runs see no reset (${protocol}, ${ROUNDS} rounds)`, { timeout: 120_000 }, async () => {
    const total: Tally = { ok: 0, refused503: 0, goaway: 0, connRefused: 0, bad: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const tally = await oneRound(protocol, CLIENTS)
      total.ok += tally.ok
      total.refused503 += tally.refused503
      total.goaway += tally.goaway
      total.connRefused += tally.connRefused
      total.bad.push(...tally.bad.map(b => `round ${round + 1}: ${b}`))
    }
    if (process.env.SHOW_TALLY !== undefined) console.log(protocol, JSON.stringify(total))
    assert.deepEqual(total.bad, [], `every outcome is a full 200, a refusal or a refused connection (${JSON.stringify({ ...total, bad: total.bad.length })})`)
    assert.ok(total.ok > CLIENTS * ROUNDS, 'the clients were served before the drain')
    assert.ok(total.connRefused + total.refused503 + total.goaway >= CLIENTS * ROUNDS, 'every client ended on a refusal')
  })
}
