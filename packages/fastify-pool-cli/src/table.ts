// The table printed once the pool is up: what listens where, serving what.
import type { Pool } from 'fastify-pool'

export function listenerTable (pool: Pool): string {
  const rows = [['NAME', 'BIND', 'URL', 'HANDLER', 'STATE']]
  for (const l of pool) {
    const s = l.status
    const address = l.address
    const where = l.url ?? (typeof address === 'string' ? `unix:${address}` : l.expose ?? '-')
    rows.push([s.name, s.bind, where, s.handler, s.disabled ? 'disabled' : s.state])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map(r => r[i]!.length)))
  return rows.map(r => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i]!)).join('  ')).join('\n') + '\n'
}
