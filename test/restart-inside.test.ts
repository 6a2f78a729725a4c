// A route that restarts its own listener: restart() resolves once the new
// generation serves, without waiting for the request that called it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPool, type RestartReport } from 'fastify-pool'
import { keepAliveAgent, send, within } from './fixtures/lifecycle.ts'

test('a route that awaits pool.restart() of its own listener answers at once; the old generation retires after it', async (t) => {
  const events: string[] = []
  let builds = 0
  let retired: RestartReport['retired'] | undefined
  const pool = createPool({
    servers: [{ name: 'admin', listen: '127.0.0.1:0' }],
    defaults: { stopTimeout: 10_000 },
    handlers: async (app) => {
      const id = ++builds
      app.addHook('onClose', async () => { events.push(`closed ${id}`) })
      app.get('/who', async () => `gen ${id}`)
      app.post('/restart', async () => {
        const [report] = await pool.restart()
        retired = report?.retired
        events.push('restart resolved')
        return { generation: report?.generation }
      })
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  const url = pool.load('admin')?.url as string
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())

  const began = Date.now()
  const res = await within(5_000, send(`${url}/restart`, { method: 'POST', agent }), 'the restart route')
  assert.ok(Date.now() - began < 1_000, `answered after ${Date.now() - began} ms`)
  assert.equal(res.status, 200)
  assert.deepEqual(JSON.parse(res.body), { generation: 2 })
  const report = await within(5_000, retired as Promise<unknown>, 'the old generation retiring')
  assert.deepEqual(report && { generation: (report as { generation: number }).generation, cut: (report as { cut: number }).cut }, { generation: 1, cut: 0 })
  assert.deepEqual(events, ['restart resolved', 'closed 1'], 'generation 1 closed after it answered')
  assert.equal((await send(`${url}/who`, { agent })).body, 'gen 2', 'the same connection now reaches generation 2')
})
