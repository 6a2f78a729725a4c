// 7. WebSockets: echo messages per second through a pooled listener against
// bare Fastify with the same plugin (@fastify/websocket), and the server's
// CPU time per message; then connections held while the listener restarts.
import WebSocket from 'ws'
import { Child } from './child.ts'
import type { BenchOptions, Log, Section } from './options.ts'
import { fmt, fmtInt, fmtRatio, median, table, verdict } from './stats.ts'
import type { Sample } from './target.ts'
import type { WsTargetInfo } from './websocket-target.ts'

interface Echoes { messages: number, seconds: number, closed: number, errors: number }

/** Open `n` WebSockets to `url`. */
async function openAll (url: string, n: number): Promise<WebSocket[]> {
  return await Promise.all(Array.from({ length: n }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })))
}

/**
 * Each client keeps `inFlight` messages of 64 bytes outstanding and sends
 * one more per echo, for `seconds`. Counts the echoes, and the clients
 * closed or failed before the end.
 */
async function echo (clients: WebSocket[], inFlight: number, seconds: number, during?: () => Promise<void>): Promise<Echoes> {
  const payload = Buffer.alloc(64, 'x')
  let messages = 0
  let running = true
  const result = { closed: 0, errors: 0 }
  const onClose = (): void => { if (running) result.closed++ }
  const onError = (): void => { result.errors++ }
  const onMessage = function (this: WebSocket): void {
    messages++
    if (running && this.readyState === WebSocket.OPEN) this.send(payload)
  }
  for (const ws of clients) {
    ws.on('message', onMessage)
    ws.on('close', onClose)
    ws.on('error', onError)
    for (let i = 0; i < inFlight; i++) ws.send(payload)
  }
  const began = performance.now()
  const deadline = new Promise(resolve => setTimeout(resolve, seconds * 1000))
  await Promise.all([deadline, during?.()])
  running = false
  const elapsed = (performance.now() - began) / 1000
  const counted = messages
  // Let the messages still in flight come back before the next run.
  await new Promise(resolve => setTimeout(resolve, 200))
  for (const ws of clients) {
    ws.off('message', onMessage)
    ws.off('close', onClose)
    ws.off('error', onError)
  }
  return { messages: counted, seconds: elapsed, ...result }
}

interface Run { variant: string, rate: number, cpuPerMessage: number, closed: number, errors: number }

async function measure (variant: 'fastify' | 'pool', o: BenchOptions['websocket'], pin: boolean): Promise<Run> {
  const child = await Child.spawn('websocket-target.ts', [variant], { cpu: pin ? 1 : undefined })
  try {
    const { url } = await child.call<WsTargetInfo>('info')
    const clients = await openAll(url, o.connections)
    await echo(clients, o.inFlight, o.warmup)
    const before = await child.call<Sample>('sample')
    const run = await echo(clients, o.inFlight, o.duration)
    const after = await child.call<Sample>('sample')
    for (const ws of clients) ws.terminate()
    return { variant, rate: run.messages / run.seconds, cpuPerMessage: (after.cpu - before.cpu) * 1000 / run.messages, closed: run.closed, errors: run.errors }
  } finally {
    await child.close()
  }
}

export async function websocketSuite (options: BenchOptions, log: Log): Promise<Section> {
  const o = options.websocket
  const params = `@fastify/websocket echo of 64-byte messages: ${o.connections} connections with ${o.inFlight} messages in flight each, ${o.duration} s per run after ${o.warmup} s of warm-up, ${o.rounds} round(s) of (bare Fastify, pool) in alternating order; then ${o.held} connections held over ${o.restarts} restarts of the pooled listener while they echo`
  log(`\n## 7. WebSockets\n${params}`)
  const bare: Run[] = []
  const pooled: Run[] = []
  const ratios: number[] = []
  const cpuRatios: number[] = []
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 === 0 ? ['fastify', 'pool'] as const : ['pool', 'fastify'] as const
    const pair: Record<string, Run> = {}
    for (const variant of order) {
      const run = await measure(variant, o, options.pin)
      pair[variant] = run
      ;(variant === 'pool' ? pooled : bare).push(run)
      log(`  ${variant.padEnd(8)} ${fmtInt(run.rate).padStart(8)} msg/s  server CPU ${fmt(run.cpuPerMessage, 2)} µs/msg  closed ${run.closed}  errors ${run.errors}`)
    }
    ratios.push(pair.pool!.rate / pair.fastify!.rate)
    cpuRatios.push(pair.pool!.cpuPerMessage / pair.fastify!.cpuPerMessage)
  }

  // Connections held across restarts.
  const child = await Child.spawn('websocket-target.ts', ['pool'], { cpu: options.pin ? 1 : undefined })
  let held: Echoes
  let last: { generation: number, upgraded: number, retiring: number } | undefined
  try {
    const { url } = await child.call<WsTargetInfo>('info')
    const clients = await openAll(url, o.held)
    held = await echo(clients, 1, o.restartSeconds, async () => {
      for (let i = 0; i < o.restarts; i++) {
        last = await child.call('restart')
        await new Promise(resolve => setTimeout(resolve, (o.restartSeconds * 1000) / (o.restarts + 1)))
      }
    })
    for (const ws of clients) ws.terminate()
  } finally {
    await child.close()
  }
  const ratio = median(ratios)
  const body = [
    table(['server', 'msg/s', 'server CPU µs/msg', 'msg/s ÷ bare', 'CPU ÷ bare', 'closed', 'errors'], [
      ['bare Fastify + @fastify/websocket', fmtInt(median(bare.map(r => r.rate))), fmt(median(bare.map(r => r.cpuPerMessage)), 2), '1.000', '1.000', String(bare.reduce((n, r) => n + r.closed, 0)), String(bare.reduce((n, r) => n + r.errors, 0))],
      ['pooled listener, same plugin', fmtInt(median(pooled.map(r => r.rate))), fmt(median(pooled.map(r => r.cpuPerMessage)), 2), fmtRatio(ratio), fmtRatio(median(cpuRatios)), String(pooled.reduce((n, r) => n + r.closed, 0)), String(pooled.reduce((n, r) => n + r.errors, 0))]
    ]),
    '',
    table(['held across restarts', 'connections', 'restarts', 'echoes', 'closed', 'errors', 'closed = 0'], [
      ['pooled listener', String(o.held), String(o.restarts), fmtInt(held.messages), String(held.closed), String(held.errors), verdict(held.closed + held.errors === 0)]
    ]),
    '',
    `After the last restart the listener held ${last?.upgraded ?? '?'} upgraded connections, with ${last?.retiring ?? '?'} generation(s) retiring: each connection stays with the generation that accepted it.`
  ].join('\n')
  const misses: string[] = []
  if (ratio < 0.98) misses.push(`WebSocket echo through the pool: ${fmtRatio(ratio)} × bare Fastify's messages per second (target 0.98)`)
  if (held.closed + held.errors > 0) misses.push(`WebSockets across restarts: ${held.closed} closed and ${held.errors} errors (target 0)`)
  return { title: '7. WebSockets', params, body, misses }
}
