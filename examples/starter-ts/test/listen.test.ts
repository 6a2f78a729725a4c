// The pool on real sockets, as `npm start` runs it: each listener on a port of
// its own (the system picks them), HTTPS with the certificate it was given.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { get } from 'node:https'
import type { ControlStatusBody } from 'fastify-pool'
import { certificate, pool } from './helpers.ts'

/** GET over HTTPS, trusting the development certificate. */
function getTls (url: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca: readFileSync(certificate) }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

test('three listeners answer on their own ports, and stop() closes them', async (t) => {
  const p = await pool(t)
  await p.start()
  const url = (name: string): string => {
    const at = p.load(name)?.url
    assert.ok(at, `${name} has a URL`)
    return at
  }
  const [publicUrl, secureUrl, adminUrl] = [url('public'), url('secure'), url('admin')]
  assert.equal(new Set([publicUrl, secureUrl, adminUrl]).size, 3)

  assert.deepEqual(await (await fetch(`${publicUrl}/items/2`)).json(), { id: 2, name: 'item 2' })
  assert.deepEqual(JSON.parse((await getTls(`${secureUrl}/items/2`)).body), { id: 2, name: 'item 2' })
  const status = await (await fetch(`${adminUrl}/pool`)).json() as ControlStatusBody
  assert.deepEqual(status.listeners.map((l) => [l.name, l.state]), [['public', 'running'], ['secure', 'running'], ['admin', 'running']])

  await p.stop()
  await assert.rejects(fetch(`${publicUrl}/`))
})
