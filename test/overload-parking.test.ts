// Parked connections (docs/overload.md): while a listener holds requests,
// the HTTP/1 connections it answers are not read until the queue has room.
// A parked connection is read again by itself, with nothing else happening
// in the pool's process, and a stop answers what its client sent. The pool
// runs in a process of its own (test/fixtures/parking-pool.ts: a client in
// its process would wake its loop); real sockets on 127.0.0.1; a small
// target so that a few requests make the listener hold.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { logLines, run, type Child } from './fixtures/cli.ts'

const POOL = fileURLToPath(new URL('./fixtures/parking-pool.ts', import.meta.url))

/** A keep-alive connection that sends GET / and collects the status lines and whether the server closed it. */
class Client {
  readonly socket: Socket
  statuses: number[] = []
  closed = false
  /** An answer said Connection: close: nothing more is sent. */
  closing = false
  #waiters: Array<() => void> = []
  #buffer = ''

  constructor (port: number) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.setEncoding('utf8')
    this.socket.on('data', (chunk: string) => {
      this.#buffer += chunk
      if (/\r\nconnection: close\r\n/i.test(chunk)) this.closing = true
      for (let i = this.#buffer.indexOf('HTTP/1.1 '); i !== -1; i = this.#buffer.indexOf('HTTP/1.1 ')) {
        this.statuses.push(Number(this.#buffer.slice(i + 9, i + 12)))
        this.#buffer = this.#buffer.slice(i + 12)
      }
      this.#wake()
    })
    this.socket.on('close', () => { this.closed = true; this.#wake() })
    this.socket.on('error', () => {})
  }

  #wake (): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  send (): void { this.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n') }

  /** Resolves once `n` answers came or the connection closed. */
  async answers (n: number): Promise<void> {
    while (this.statuses.length < n && !this.closed) await new Promise<void>(resolve => this.#waiters.push(resolve))
  }
}

async function holdingPool (t: TestContext): Promise<{ child: Child, port: number }> {
  const child = run(t, ['--conditions=source', '--import', 'tsx', POOL])
  const out = await child.waitFor(o => o.includes('"url":'), 30_000)
  const url = String(logLines(out).find(l => l.url !== undefined)?.url)
  return { child, port: Number(new URL(url).port) }
}

/** Twenty connections, a request each at once: the listener holds most of them, and parks the connections it answers. */
async function parked (port: number): Promise<Client[]> {
  const clients = Array.from({ length: 20 }, () => new Client(port))
  await Promise.all(clients.map(c => new Promise(resolve => c.socket.once('connect', resolve))))
  for (const c of clients) c.send()
  await Promise.all(clients.map(c => c.answers(1)))
  return clients
}

test('a parked connection is read again by itself: requests sent on it after the flood get their answer within maxWait, with nothing else going on', { timeout: 30_000 }, async (t) => {
  const { port } = await holdingPool(t)
  const clients = await parked(port)
  assert.deepEqual(clients.map(c => c.statuses[0]), clients.map(() => 200))
  const began = performance.now()
  for (const c of clients) c.send()
  await Promise.all(clients.map(c => c.answers(2)))
  const took = performance.now() - began
  // maxWait (300 ms) in the kernel at most, then served; a stalled loop waits for an unrelated timer (here: none for seconds).
  assert.ok(took < 1000, `the second requests took ${took.toFixed(0)} ms`)
  assert.deepEqual(clients.map(c => c.closed), clients.map(() => false))
  for (const c of clients) c.socket.destroy()
})

test('a stop while connections are parked: what their clients sent is answered (200, or 503 with Connection: close), none is closed on a request', { timeout: 30_000 }, async (t) => {
  const { child, port } = await holdingPool(t)
  const clients = await parked(port)
  // Back to back until the server closes: each answer brings the next request.
  let sent = 0
  for (const c of clients) {
    c.socket.on('data', () => { if (!c.closing && !c.closed && c.socket.writable && c.statuses.length > 1 && c.statuses.length < 40) { c.send(); sent++ } })
    c.send()
    sent++
  }
  child.proc.kill('SIGTERM')
  await Promise.all(clients.map(c => c.answers(Infinity)))
  const out = await child.waitFor(o => o.includes('"stopped":'), 10_000)
  const report = (logLines(out).find(l => l.stopped !== undefined)?.stopped as Array<{ cut: number }>)[0]
  assert.equal(report?.cut, 0)
  const answered = clients.reduce((n, c) => n + c.statuses.length, 0) - clients.length
  assert.equal(answered, sent, `every request sent after the first round was answered: ${answered} of ${sent}`)
})
