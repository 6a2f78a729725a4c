// The metrics as a real Prometheus sees them: the Debian package scrapes the
// metrics listener every second, and its HTTP API must count exactly the
// requests the test sent to each listener. promtool checks the exposition.
// Loopback only, a temporary folder, everything stopped at the end.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPool, type Pool } from 'fastify-pool'
import { freePort } from './fixtures/cli.ts'
import { send } from './fixtures/lifecycle.ts'
import { owned, track } from './fixtures/owned.ts'

function binary (name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/sbin']) {
    const path = join(dir, name)
    if (spawnSync(path, ['--version'], { stdio: 'ignore' }).status === 0) return path
  }
  return undefined
}

const prometheus = binary('prometheus')
const promtool = binary('promtool')
const skip = prometheus === undefined || promtool === undefined
  ? 'prometheus/promtool not installed (Debian package "prometheus"; .ci/run installs it)'
  : false

function makePool (t: TestContext): Pool {
  const pool = createPool({
    metrics: { listener: 'admin' },
    servers: [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
    handlers: async (app) => {
      app.get('/hello/:who', async () => 'hello')
      app.get('/fail', async () => { throw new Error('no') })
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

/** Ask until `check` says yes or `ms` pass: Prometheus scrapes on its own clock, so there is no event to await. */
async function until<T> (ms: number, what: string, ask: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const got = await ask()
      if (got !== undefined) return got
    } catch (err) {
      last = err
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  throw new Error(`${what}: not within ${ms} ms${last === undefined ? '' : ` (${String(last)})`}`)
}

async function api (base: string, path: string): Promise<{ status: string, data: any }> {
  const reply = await fetch(`${base}${path}`)
  return await reply.json() as { status: string, data: any }
}

test('a real Prometheus scrapes the metrics listener and counts what each listener served', { skip, timeout: 90_000 }, async (t) => {
  const pool = makePool(t)
  await pool.start()
  const pub = pool.load('public')?.url ?? ''
  const admin = pool.load('admin')
  const adminPort = new URL(admin?.url ?? '').port
  const sent = { public: 0, admin: 0 }
  for (let i = 0; i < 17; i++) { await send(`${pub}/hello/${i}`); sent.public++ }
  for (let i = 0; i < 3; i++) { await send(`${pub}/fail`); sent.public++ }
  for (let i = 0; i < 4; i++) { await send(`${pub}/nowhere`); sent.public++ }
  for (let i = 0; i < 5; i++) { await send(`${admin?.url ?? ''}/healthz`); sent.admin++ }

  const dir = mkdtempSync(join(tmpdir(), 'fastify-pool-prometheus-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: fastify-pool',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${adminPort}']`,
    ''
  ].join('\n'))
  const port = await freePort()
  const child: ChildProcess = track(spawn(...owned(prometheus as string, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn'
  ]), { stdio: ['ignore', 'ignore', 'pipe'] }))
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  const base = `http://127.0.0.1:${port}`

  const target = await until(40_000, `Prometheus reports the target up (${stderr})`, async () => {
    const { data } = await api(base, '/api/v1/targets')
    const found = (data.activeTargets as Array<{ health: string, scrapeUrl: string, lastError: string }>).find(x => x.scrapeUrl.includes(`:${adminPort}/metrics`))
    return found?.health === 'up' ? found : undefined
  })
  assert.equal(target.lastError, '')

  // What Prometheus stored must be what was sent: exact counts per listener.
  const query = 'sum by (listener) (http_request_duration_seconds_count{route!="/metrics"})'
  const byListener = await until(30_000, 'Prometheus has every request', async () => {
    const { status, data } = await api(base, `/api/v1/query?query=${encodeURIComponent(query)}`)
    assert.equal(status, 'success')
    const counts = Object.fromEntries((data.result as Array<{ metric: { listener: string }, value: [number, string] }>).map(r => [r.metric.listener, Number(r.value[1])]))
    return counts.public === sent.public && counts.admin === sent.admin ? counts : undefined
  })
  assert.deepEqual(byListener, { public: 24, admin: 5 })

  const statuses = await api(base, `/api/v1/query?query=${encodeURIComponent('sum by (status_code) (http_request_duration_seconds_count{listener="public"})')}`)
  assert.deepEqual(Object.fromEntries((statuses.data.result as Array<{ metric: { status_code: string }, value: [number, string] }>).map(r => [r.metric.status_code, Number(r.value[1])])), { 200: 17, 500: 3, 404: 4 })
  const up = await api(base, `/api/v1/query?query=${encodeURIComponent('fastify_pool_listener_up')}`)
  assert.deepEqual((up.data.result as Array<{ metric: { listener: string }, value: [number, string] }>).map(r => `${r.metric.listener}=${r.value[1]}`).sort(), ['admin=1', 'public=1'])
})

test('promtool accepts the exposition: our metrics without a finding, prom-client\'s process metrics parsed', { skip }, async (t) => {
  const pool = makePool(t)
  await pool.start()
  await send(`${pool.load('public')?.url ?? ''}/hello/x`)
  const full = await send(`${pool.load('admin')?.url ?? ''}/metrics`)
  const check = (text: string): { status: number | null, output: string } => {
    const run = spawnSync(promtool as string, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    return { status: run.status, output: `${run.stdout}${run.stderr}` }
  }
  assert.match(full.body, /# TYPE http_request_duration_seconds histogram/)
  const own = check(`${(await pool.metrics?.registry.metrics()) ?? ''}`)
  assert.equal(own.status, 0, `promtool findings on the pool's metrics:\n${own.output}`)
  assert.equal(own.output.trim(), '')
  // Exit code 3 is lint findings only (1 would be a text it cannot parse);
  // the findings are prom-client's own gauges named *_total.
  const all = check(full.body)
  assert.ok(all.status === 0 || all.status === 3, `promtool could not parse the exposition:\n${all.output}`)
  for (const line of all.output.split('\n').filter(l => l.trim() !== '')) assert.match(line, /^nodejs_/, `a finding not from prom-client's defaults: ${line}`)
})
