// Summarise V8 CPU profiles (from `pnpm bench --profile`, or any --cpu-prof
// run): self time per function, and the share of time spent in each package.
//   node --import tsx bench/profile.ts [--top 30] [--filter fastify-pool] FILE.cpuprofile...
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fmt, table } from './stats.ts'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, filter: { type: 'string' } }
})
if (positionals.length === 0) {
  console.error('usage: node --import tsx bench/profile.ts [--top N] [--filter TEXT] FILE.cpuprofile...')
  process.exit(2)
}

/** Where a frame's code lives: a package name, node internals, or the V8 bookkeeping entries. */
function owner (url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)'
  if (url.startsWith('node:')) return 'node'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  if (url.includes('/packages/fastify-pool/src/')) return 'fastify-pool'
  if (url.includes('/bench/')) return 'bench'
  return 'other'
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0
    self.set(id, (self.get(id) ?? 0) + dt)
    total += dt
  })
  const perFunction = new Map<string, { us: number, owner: string }>()
  const perOwner = new Map<string, number>()
  for (const [id, us] of self) {
    const frame = (byId.get(id) as ProfileNode).callFrame
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^file:\/\/.*?\/(node_modules|packages|bench)\//, '$1/')}:${frame.lineNumber + 1}`
    const key = `${frame.functionName === '' ? '(anonymous)' : frame.functionName}${where}`
    const o = owner(frame.url, frame.functionName)
    const entry = perFunction.get(key) ?? { us: 0, owner: o }
    entry.us += us
    perFunction.set(key, entry)
    perOwner.set(o, (perOwner.get(o) ?? 0) + us)
  }
  const busy = total - (perOwner.get('(idle)') ?? 0)
  const pct = (us: number): string => `${fmt(us * 100 / busy, 1)} %`
  console.log(`\n# ${file}\n${fmt(total / 1000, 0)} ms sampled, ${fmt(busy / 1000, 0)} ms not idle (shares below are of the busy time)\n`)
  const owners = [...perOwner].filter(([o]) => o !== '(idle)').sort((a, b) => b[1] - a[1])
  console.log(table(['where', 'self ms', 'share'], owners.map(([o, us]) => [o, fmt(us / 1000, 1), pct(us)])))
  const rows = [...perFunction].filter(([k, v]) => v.owner !== '(idle)' && (values.filter === undefined || k.includes(values.filter) || v.owner.includes(values.filter)))
    .sort((a, b) => b[1].us - a[1].us).slice(0, Number(values.top))
  console.log()
  console.log(table(['function', 'self ms', 'share'], rows.map(([k, v]) => [k, fmt(v.us / 1000, 1), pct(v.us)])))
}
