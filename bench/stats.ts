// Small statistics and formatting helpers shared by the benchmark suites.

export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** The q-quantile (0..1) of values that are already sorted ascending (nearest rank). */
export function quantileSorted (sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank] as number
}

/** Least-squares slope of y over x: used to show how a cost grows with N. */
export function slope (xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my)
    den += ((xs[i] as number) - mx) ** 2
  }
  return den === 0 ? Number.NaN : num / den
}

export function fmt (value: number, digits = 1): string {
  if (!Number.isFinite(value)) return 'n/a'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export const fmtInt = (value: number): string => fmt(value, 0)
export const fmtRatio = (value: number): string => fmt(value, 3)
export const fmtMs = (value: number): string => value >= 100 ? fmt(value, 0) : fmt(value, value >= 10 ? 1 : 2)

export function fmtBytes (bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a'
  const abs = Math.abs(bytes)
  if (abs >= 1024 * 1024) return `${fmt(bytes / 1024 / 1024, 1)} MiB`
  if (abs >= 1024) return `${fmt(bytes / 1024, 1)} KiB`
  return `${fmt(bytes, 0)} B`
}

/** A markdown table; it reads fine on a terminal too. */
export function table (head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`
  return [line(head), `|${widths.map(w => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

/** Marks a figure against its target in the tables. */
export const verdict = (ok: boolean): string => ok ? 'yes' : '**no**'
