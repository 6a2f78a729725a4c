// A restart leaves nothing behind: every retired Fastify instance can be
// collected once its requests are done. Each protocol runs in a child
// process with --expose-gc, where a FinalizationRegistry counts collections.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { owned, track } from './fixtures/owned.ts'

const child = fileURLToPath(new URL('./fixtures/restart-gc-child.ts', import.meta.url))
const RUNS = 200

for (const [protocol, extra] of [['http'], ['https'], ['h2'], ['http', 'metrics'], ['http', 'canary'], ['ws']] as Array<[string, string?]>) {
  const RESTARTS = protocol === 'ws' ? 100 : RUNS
  test(`${RESTARTS} restarts with keep-alive requests${protocol === 'ws' ? ' and WebSockets' : ''} retain no retired instance (${protocol}${extra === undefined ? '' : ` with ${extra}`})`, { timeout: 120_000 }, async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
      track(execFile(...owned(process.execPath, ['--expose-gc', '--conditions=source', '--import', 'tsx', child, protocol, String(RESTARTS), ...(extra === undefined ? [] : [extra])]), { timeout: 100_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : null), stdout, stderr })
      }))
    })
    assert.equal(code, 0, `the child failed: ${stderr}`)
    const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}')
    assert.ok(r.collected >= 0.95 * r.retired, `${r.collected} of ${r.retired} retired instances were collected`)
    // A retained instance costs about 160 KiB; a few KiB is noise of the heap itself.
    // The WebSocket clients in the same process add their own noise over fewer restarts.
    const limit = (protocol === 'ws' ? 12 : 8) * 1024
    assert.ok(r.heapPerRestart < limit, `the heap grew ${Math.round(r.heapPerRestart)} bytes per restart`)
  })
}
