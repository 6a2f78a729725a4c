// `node --conditions=source --import tsx bench/drain-race.ts [protocol] [seconds] [burners] [clients]`
// The drain under load on a busy machine: rounds of test/drain-clients.test.ts
// (keep-alive clients sending back to back while stop() runs, in the same
// process as the server) for `seconds`, with `burners` CPU-spinning processes
// beside it. Every outcome that is not a full 200, a 503 with Connection:
// close, a GOAWAY or a refused connection is printed and counted. Loopback
// only; bounded by time; the burners die with this process.
import { spawn } from 'node:child_process'
import { oneRound, type Protocol } from '../test/fixtures/drain-clients.ts'
import { owned, track } from '../test/fixtures/owned.ts'

const protocol = (process.argv[2] ?? 'https') as Protocol
const seconds = Number(process.argv[3] ?? 60)
const burners = Number(process.argv[4] ?? 2)
const clients = Number(process.argv[5] ?? 20)

const spinning = Array.from({ length: burners }, () => track(spawn(...owned(process.execPath, ['-e', 'for (;;) {}']), { stdio: 'ignore' })))
const end = Date.now() + seconds * 1000
let rounds = 0
let bad = 0
let served = 0
let clientEnds = 0
while (Date.now() < end) {
  const tally = await oneRound(protocol, clients)
  rounds++
  served += tally.ok
  clientEnds += clients
  if (tally.bad.length > 0) {
    bad += tally.bad.length
    const kinds: Record<string, number> = {}
    for (const b of tally.bad) kinds[b] = (kinds[b] ?? 0) + 1
    console.log(`round ${rounds}: ${JSON.stringify(kinds)}`)
  }
}
for (const child of spinning) child.kill('SIGKILL')
console.log(JSON.stringify({ protocol, seconds, burners, clients, rounds, served, clientEnds, bad, share: clientEnds === 0 ? 0 : bad / clientEnds }))
