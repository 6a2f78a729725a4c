// A real browser against the control API: headless Chromium opens a page of
// another site (evil.example, mapped to 127.0.0.1 by the browser's resolver)
// that tries to stop a listener with fetch(…, { mode: 'no-cors' }) and with an
// auto-submitted form. The requests reach the control API, which refuses them,
// and the listener keeps serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createPool } from 'fastify-pool'
import { send } from './fixtures/lifecycle.ts'
import { dumpDom, NO_CHROMIUM } from './fixtures/chromium.ts'

test('a page of another site cannot stop a listener through the control API (fetch no-cors, a form)', { skip: NO_CHROMIUM, timeout: 60_000 }, async (t) => {
  const pool = createPool({
    control: { listener: 'admin' },
    servers: [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
    handlers: async (app) => { app.get('/', async () => 'public') }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const admin = pool.load('admin')?.url as string
  const target = `${admin}/pool/stop?name=public`

  // Every request the control API received, with its Origin: proof that the browser did send them.
  const seen: Array<{ url: string, origin: string | undefined }> = []
  const onRequest = (message: unknown): void => {
    const request = (message as { request: IncomingMessage }).request
    if (request.url?.startsWith('/pool') === true) seen.push({ url: request.url, origin: request.headers.origin })
  }
  subscribe('http.server.request.start', onRequest)
  t.after(() => unsubscribe('http.server.request.start', onRequest))

  const page = `<!doctype html><title>attack</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${target}" enctype="text/plain" target="sink"><input name="x" value="y"></form>
<script>
fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors' })
  .catch(() => {})
  .then(() => { document.getElementById('f').submit(); setTimeout(() => { document.title = 'done' }, 500) })
</script>`
  let pageServed = 0
  const attacker = createServer((_req, res) => { pageServed++; res.writeHead(200, { 'content-type': 'text/html' }).end(page) })
  attacker.listen(0, '127.0.0.1')
  await once(attacker, 'listening')
  t.after(() => new Promise(resolve => attacker.close(resolve)))
  const attackerPort = (attacker.address() as AddressInfo).port

  const dom = await dumpDom(t, `http://evil.example:${attackerPort}/`, ['--host-resolver-rules=MAP evil.example 127.0.0.1'], 10_000)

  assert.equal(pageServed > 0, true, 'the browser loaded the attacking page')
  assert.match(dom, /<title>done<\/title>/, 'the page ran its attack to the end')
  const stops = seen.filter(s => s.url.startsWith('/pool/stop'))
  assert.ok(stops.length >= 2, `the fetch and the form both reached the control API (${JSON.stringify(seen)})`)
  assert.ok(stops.every(s => s.origin === `http://evil.example:${attackerPort}`), JSON.stringify(stops))
  assert.equal(pool.load('public')?.state, 'running')
  assert.equal((await send(pool.load('public')?.url as string)).body, 'public')
})
