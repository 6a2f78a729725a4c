// Behind a real load balancer: HAProxy (the Debian package) balances over
// two `fastify-pool start` processes on 127.0.0.1 and checks their admin
// listeners' /readyz, as Kubernetes endpoints would. Under steady keep-alive
// load through HAProxy, a SIGTERM to one process and then a rolling restart
// of both must fail no request. Loopback only, bounded, all stopped at the end.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { BIN, freePort, get, run, tempDir, type Child } from './fixtures/cli.ts'
import { owned, track } from './fixtures/owned.ts'

function haproxyBinary (): string | undefined {
  for (const path of ['haproxy', '/usr/sbin/haproxy']) {
    if (spawnSync(path, ['-v'], { stdio: 'ignore' }).status === 0) return path
  }
  return undefined
}
const HAPROXY = haproxyBinary()

interface Replica { name: string, port: number, admin: number, child?: Child }

function poolFile (r: Replica): string {
  return [
    'defaults:',
    '  stopTimeout: 8000',
    // Above HAProxy's fall × inter (2 × 200 ms): it stops sending before the drain.
    '  shutdownDelay: 1500',
    'handlers:',
    '  api: ./api.js',
    'servers:',
    '  - name: public',
    `    listen: 127.0.0.1:${r.port}`,
    '    handler: api',
    '  - name: admin',
    `    listen: 127.0.0.1:${r.admin}`,
    '    handler: api',
    '    stopOrder: 1',
    ''
  ].join('\n')
}

async function startReplica (t: TestContext, dir: string, r: Replica): Promise<Child> {
  const child = run(t, [BIN, 'start', '--json', join(dir, `${r.name}.yaml`)], { cwd: dir })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  r.child = child
  return child
}

/** HAProxy's view of a server, from its stats CSV: UP, DOWN, NOLB... */
async function serverStatus (statsPort: number, server: string): Promise<string | undefined> {
  const csv = (await get(`http://127.0.0.1:${statsPort}/stats;csv`)).body
  const header = (csv.split('\n')[0] ?? '').replace(/^# /, '').split(',')
  const status = header.indexOf('status')
  const row = csv.split('\n').map(l => l.split(',')).find(cols => cols[0] === 'pool' && cols[1] === server)
  return row?.[status]
}

/** HAProxy checks on its own clock: ask until it reports `wanted` (bounded). */
async function until (statsPort: number, server: string, wanted: RegExp): Promise<void> {
  const deadline = Date.now() + 20_000
  let last: string | undefined
  while (Date.now() < deadline) {
    last = await serverStatus(statsPort, server).catch(() => undefined)
    if (last !== undefined && wanted.test(last)) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`HAProxy did not report ${server} ${String(wanted)} within 20 s (last: ${last ?? 'nothing'})`)
}

test('behind HAProxy: SIGTERM to one replica and a rolling restart of both fail no request', { skip: HAPROXY === undefined ? 'haproxy not installed (Debian package "haproxy"; .ci/run installs it)' : false, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t, 'fastify-pool-haproxy-')
  mkdirSync(join(dir, 'run'))
  writeFileSync(join(dir, 'api.js'), 'export default async function (app) { app.get(\'/\', async () => ({ ok: true })) }\n')
  const replicas: Replica[] = []
  for (const name of ['a', 'b']) replicas.push({ name, port: await freePort(), admin: await freePort() })
  for (const r of replicas) writeFileSync(join(dir, `${r.name}.yaml`), poolFile(r))
  const front = await freePort()
  const stats = await freePort()
  writeFileSync(join(dir, 'haproxy.cfg'), [
    'global',
    '  maxconn 512',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 20s',
    '  timeout server 20s',
    '  option http-keep-alive',
    // A request on a reused server connection that the server closed at that moment is sent again.
    '  retries 3',
    '  option redispatch',
    '  retry-on conn-failure empty-response response-timeout',
    'frontend front',
    `  bind 127.0.0.1:${front}`,
    '  default_backend pool',
    'backend pool',
    '  balance roundrobin',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    '  default-server inter 200ms fall 2 rise 1',
    ...replicas.map(r => `  server ${r.name} 127.0.0.1:${r.port} check port ${r.admin}`),
    'listen stats',
    `  bind 127.0.0.1:${stats}`,
    '  stats enable',
    '  stats uri /stats',
    ''
  ].join('\n'))

  for (const r of replicas) await startReplica(t, dir, r)
  const haproxy = track(spawn(...owned(HAPROXY as string, ['-db', '-f', join(dir, 'haproxy.cfg')]), { stdio: ['ignore', 'ignore', 'pipe'] }))
  let haproxyLog = ''
  haproxy.stderr?.on('data', (c: Buffer) => { haproxyLog += c.toString() })
  t.after(async () => {
    if (haproxy.exitCode === null) {
      haproxy.kill('SIGTERM')
      await once(haproxy, 'exit')
    }
  })
  for (const r of replicas) await until(stats, r.name, /^UP/)

  let load!: autocannon.Instance
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    load = autocannon({ url: `http://127.0.0.1:${front}/`, connections: 8, duration: 90, timeout: 10 }, (err, result) => err == null ? resolve(result) : reject(err))
  })
  t.after(() => load.stop())
  const seen = { responses: 0 }
  load.on('response', () => { seen.responses++ })
  /** Lets `n` more responses through (bounded), so that each step happens under load. */
  const traffic = async (n: number): Promise<void> => {
    const target = seen.responses + n
    const deadline = Date.now() + 20_000
    while (seen.responses < target && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  }
  await traffic(500)

  // One replica leaves: readiness 503, HAProxy takes it out, the drain ends, exit 0.
  const [a, b] = replicas as [Replica, Replica]
  a.child?.proc.kill('SIGTERM')
  await until(stats, 'a', /^DOWN/)
  assert.equal((await a.child?.exited)?.code, 0, a.child?.stderr())
  await traffic(500)

  // A rolling restart: a comes back, then b leaves and comes back.
  await startReplica(t, dir, a)
  await until(stats, 'a', /^UP/)
  b.child?.proc.kill('SIGTERM')
  await until(stats, 'b', /^DOWN/)
  assert.equal((await b.child?.exited)?.code, 0, b.child?.stderr())
  await startReplica(t, dir, b)
  await until(stats, 'b', /^UP/)
  await traffic(500)

  load.stop()
  const result = await finished
  assert.ok(result.requests.total > 1500, `${result.requests.total} requests`)
  assert.equal(result.errors, 0, `errors: ${result.errors}, timeouts ${result.timeouts}\n${haproxyLog}`)
  assert.equal(result.non2xx, 0, `non-2xx answers: ${result.non2xx}\n${haproxyLog}`)
})
