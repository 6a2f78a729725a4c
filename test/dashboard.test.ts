// The control API's status page in a real headless Chromium: it renders
// every listener and process from GET /pool, refreshes itself (a restart
// made between two of its polls shows), fetches nothing from elsewhere, and
// with a token asks for it instead of showing data.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage } from 'node:http'
import { createPool, type ControlOptions, type Pool } from 'fastify-pool'
import { send } from './fixtures/lifecycle.ts'
import { dumpDom, NO_CHROMIUM as skip } from './fixtures/chromium.ts'

function makePool (t: TestContext, control: ControlOptions = { listener: 'admin' }): Pool {
  const pool = createPool({
    control,
    servers: [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'api', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/', async () => 'hi') }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

const dump = (t: TestContext, url: string): Promise<string> => dumpDom(t, url)

test('the status page renders every listener and process, and refreshes itself: a restart between two polls shows', { skip, timeout: 60_000 }, async (t) => {
  const pool = makePool(t)
  await pool.start()
  const admin = pool.load('admin')!.url!
  const page = await send(`${admin}/pool/dashboard`)
  assert.equal(page.status, 200)
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'/)
  // Every request the pool's listeners received; after the page's first poll, `api` is restarted.
  const seen: string[] = []
  let restarted = false
  const onRequest = (message: unknown): void => {
    const request = (message as { request: IncomingMessage }).request
    seen.push(`${request.headers.host ?? ''}${request.url ?? ''}`)
    if (request.url === '/pool' && !restarted) {
      restarted = true
      pool.load('api')!.restart().catch(() => {})
    }
  }
  subscribe('http.server.request.start', onRequest)
  t.after(() => unsubscribe('http.server.request.start', onRequest))
  const dom = await dump(t, `${admin}/pool/dashboard`)
  const row = (name: string): string => new RegExp(`<tr data-listener="${name}">(.*?)</tr>`).exec(dom)?.[1] ?? ''
  for (const name of ['public', 'api', 'admin']) assert.match(row(name), /class="state-running">running</, `${name}: ${row(name)}`)
  assert.match(row('api'), /class="generation">2</, 'the restart shows after the next poll')
  assert.match(row('public'), /class="generation">1</)
  assert.match(row('public'), /class="rate">metrics off</, 'without metrics the page says why there are no request figures')
  assert.match(row('public'), /<td class="worker">-<\/td><td>public<\/td><td class="actions"><button>restart<\/button><button>stop<\/button><\/td><td class="state-running">/, 'the actions sit next to the name (in view on a narrow window)')
  assert.match(dom, /<table id="listeners" class="single">/, 'one process: the worker column is hidden')
  assert.doesNotMatch(row('admin'), /<button>stop/, 'no stop for the listener that serves the API')
  assert.match(dom, new RegExp(`<td>pool</td><td>${process.pid}</td><td>${process.version.replace(/\./g, '\\.')}</td>`))
  assert.ok(Number(/data-polls="(\d+)"/.exec(dom)?.[1] ?? 0) >= 2, 'it polled more than once')
  const host = new URL(admin).host
  assert.ok(seen.length > 0 && seen.every(s => s.startsWith(host) && s.includes('/pool')), `only the page and its API: ${JSON.stringify(seen)}`)
})

test('with a token the page holds no data: it asks for the token', { skip, timeout: 60_000 }, async (t) => {
  const pool = makePool(t, { listener: 'admin', token: 'dashboard-token-0123456789' })
  await pool.start()
  const admin = pool.load('admin')!.url!
  assert.equal((await send(`${admin}/pool`)).status, 401)
  const dom = await dump(t, `${admin}/pool/dashboard`)
  assert.match(dom, /<form id="token">/, 'the token form is shown')
  assert.match(dom, /this control API needs its token/)
  assert.doesNotMatch(dom, /data-listener=/)
})
