// `pnpm bench [--quick] [--only overhead,scale,restart,drain,modes,workers,websocket,upgrade,overload] [--loads autocannon,wrk] [--rounds N] [--duration S] [--no-write] [--no-pin] [--profile]`
// Runs the benchmark suites, prints their tables and writes them into
// BENCHMARKS.md between the result markers (the prose around them is kept).
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { cpus, loadavg, totalmem, platform, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { killAll, pinningAvailable, pinSelf } from './child.ts'
import { drain } from './drain.ts'
import { PRESETS, type BenchOptions, type Section } from './options.ts'
import { overhead } from './overhead.ts'
import { restart } from './restart.ts'
import { scale } from './scale.ts'
import { modes } from './modes.ts'
import { workers } from './workers.ts'
import { websocketSuite as websocket } from './websocket.ts'
import { upgrade } from './upgrade.ts'
import { overload } from './overload.ts'
import { fmt } from './stats.ts'

const SUITES = { overhead, scale, restart, drain, modes, workers, websocket, upgrade, overload } as const
type SuiteName = keyof typeof SUITES

const BEGIN = '<!-- bench:results:begin (written by `pnpm bench`; edit outside these markers) -->'
const END = '<!-- bench:results:end -->'
const FILE = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url))

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    loads: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')[0]?.replace(/^\/\/ /, ''))
  process.exit(0)
}

const only = (values.only?.split(',').map(s => s.trim()).filter(Boolean) ?? Object.keys(SUITES)) as SuiteName[]
for (const name of only) {
  if (!(name in SUITES)) {
    console.error(`--only: unknown suite "${name}"; expected some of ${Object.keys(SUITES).join(', ')}`)
    process.exit(2)
  }
}

const mode = values.quick ? 'quick' : 'full'
const pin = !values['no-pin'] && cpus().length >= 2 && pinningAvailable()
let profileDir: string | undefined
if (values.profile) {
  profileDir = join(tmpdir(), `fastify-pool-bench-${process.pid}`)
  mkdirSync(profileDir, { recursive: true })
}
const options: BenchOptions = { mode, pin, profileDir, ...structuredClone(PRESETS[mode]) }
// Overrides for the load runs (overhead and restart): rounds, and seconds per run.
for (const [flag, key] of [['rounds', 'rounds'], ['duration', 'duration']] as const) {
  const text = values[flag]
  if (text === undefined) continue
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0 || (key === 'rounds' && !Number.isInteger(value))) {
    console.error(`--${flag}: expected a positive ${key === 'rounds' ? 'integer' : 'number of seconds'}, got "${text}"`)
    process.exit(2)
  }
  options.overhead[key] = value
  options.restart[key] = value
  options.workers[key] = value
}

if (values.loads !== undefined) options.overhead.loads = values.loads.split(',').map(s => s.trim())

// The load generator lives in this process: keep it off the server's core.
if (pin) pinSelf(0)

const cpu = cpus()[0]
const machine = [
  `- Machine: ${cpus().length} × ${cpu?.model.trim() ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30, 1)} GiB, ${platform()} ${release()}`,
  `- Node ${process.version}; fastify ${version('fastify')}; autocannon ${version('autocannon')}`,
  `- Mode: ${mode}${values.only === undefined ? '' : ` (only ${only.join(', ')})`}${values.rounds === undefined && values.duration === undefined ? '' : ' with overrides'}; ${pin ? 'server pinned to core 1, load generator to core 0 (taskset)' : 'no core pinning'}`,
  `- Load average at start: ${loadavg().map(n => fmt(n, 2)).join(' ')}`
]
console.log(`# fastify-pool benchmarks\n${machine.join('\n')}`)

const began = Date.now()
const sections: Section[] = []
try {
  for (const name of only) {
    const t0 = Date.now()
    sections.push(await SUITES[name](options, line => console.log(line)))
    console.log(`  (${name}: ${fmt((Date.now() - t0) / 1000, 0)} s)`)
  }
} catch (err) {
  await killAll()
  throw err
}
machine.push(`- Load average at end: ${loadavg().map(n => fmt(n, 2)).join(' ')}; took ${fmt((Date.now() - began) / 1000, 0)} s; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`)

const report = [
  BEGIN,
  ...machine,
  '',
  ...sections.flatMap(s => [`### ${s.title}`, '', `Parameters: ${s.params}.`, '', s.body, '']),
  '### Targets missed',
  '',
  ...(sections.some(s => s.misses.length > 0) ? sections.flatMap(s => s.misses.map(m => `- ${m}`)) : ['- none']),
  END
].join('\n')

console.log(`\n${report}`)
if (profileDir !== undefined) console.log(`\nCPU profiles: ${profileDir} (summarise with: node --import tsx bench/profile.ts ${profileDir}/*.cpuprofile). The profiler slows the servers down: do not quote these figures.`)
// A partial run would replace the whole result block with part of it, and
// a profiled one is slowed down by the profiler.
if (values['no-write'] || values.only !== undefined || values.profile) {
  console.log('\nBENCHMARKS.md left as it was (--no-write, --only or --profile).')
} else {
  writeReport(report)
  console.log(`\nWrote ${FILE}`)
}

function writeReport (text: string): void {
  const old = existsSync(FILE) ? readFileSync(FILE, 'utf8') : ''
  const a = old.indexOf(BEGIN)
  const b = old.indexOf(END)
  const next = a !== -1 && b > a
    ? old.slice(0, a) + text + old.slice(b + END.length)
    : `${old === '' ? '# Benchmarks\n\n' : `${old.trimEnd()}\n\n`}## Results\n\n${text}\n`
  writeFileSync(FILE, next)
}

function version (name: string): string {
  try {
    const file = fileURLToPath(new URL(`../node_modules/${name}/package.json`, import.meta.url))
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}
