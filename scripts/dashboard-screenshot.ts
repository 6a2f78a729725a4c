// Makes docs/dashboard.png: a pool of three listeners with some traffic (one
// restarted), its status page shot by headless Chromium. Run:
//   node --conditions=source --import tsx scripts/dashboard-screenshot.ts
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'node:http'
import { createPool } from 'fastify-pool'
const pool = createPool({
  metrics: true,
  control: { listener: 'admin' },
  servers: [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'api', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }],
  handlers: async (app) => {
    app.get('/', async () => { await new Promise(resolve => setTimeout(resolve, Math.random() < 0.05 ? 40 : 1)); return 'hi' })
    app.get('/fail', async (_q, reply) => reply.code(503).send('no'))
  }
})
await pool.start()
const get = (url: string) => new Promise<void>(resolve => { request(url, res => { res.resume(); res.on('end', resolve) }).end() })
for (let i = 0; i < 400; i++) await get(pool.load('public')!.url! + '/')
for (let i = 0; i < 60; i++) await get(pool.load('api')!.url! + (i % 20 === 0 ? '/fail' : '/'))
await pool.load('api')!.restart()
const r = spawn('chromium', ['--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run', `--user-data-dir=${mkdtempSync(join(tmpdir(), 'fastify-pool-shot-'))}`, '--window-size=1500,520', '--virtual-time-budget=3000', `--screenshot=${fileURLToPath(new URL('../docs/dashboard.png', import.meta.url))}`, pool.load('admin')!.url! + '/pool/dashboard'], { stdio: 'inherit' })
await once(r, 'exit')
await pool.stop()
