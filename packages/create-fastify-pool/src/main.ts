// `npm init fastify-pool my-app` / `pnpm create fastify-pool my-app`.
import { relative } from 'node:path'
import { parseArgs } from 'node:util'
import { createProject, TargetNotEmptyError } from './create.ts'

const HELP = `Usage: create-fastify-pool [folder] [--ts]

Create a fastify-pool project from the starter template in folder
(default: fastify-pool-app). The folder must be new or empty.

  npm init fastify-pool my-app
  pnpm create fastify-pool my-app
  npm init fastify-pool my-app -- --ts

Options:
  --ts         The TypeScript starter: .ts route modules and tests, run
               through tsx on every Node.js it supports, type-checked by
               npm test
  -h, --help   Show this help
`

async function main (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ts: { type: 'boolean' } }, allowPositionals: true, strict: true })
  } catch (err) {
    const option = /'([^']*)'/.exec((err as Error).message)?.[1] ?? ''
    process.stderr.write(`create-fastify-pool: unknown option "${option}"\nRun "create-fastify-pool --help" for usage.\n`)
    return 2
  }
  if (parsed.values.help === true) {
    process.stdout.write(HELP)
    return 0
  }
  if (parsed.positionals.length > 1) {
    process.stderr.write(`create-fastify-pool: one folder please (got ${parsed.positionals.length})\n`)
    return 2
  }
  const folder = parsed.positionals[0] ?? 'fastify-pool-app'
  // `npm init fastify-pool my-app --ts` (without `--`) keeps --ts for npm,
  // which warns of an unknown config and passes it on as npm_config_ts.
  const typescript = parsed.values.ts === true || process.env.npm_config_ts === 'true'
  try {
    const { target, files } = await createProject({ target: folder, typescript })
    const pm = (process.env.npm_config_user_agent ?? '').startsWith('pnpm') ? 'pnpm' : 'npm'
    const path = relative(process.cwd(), target) || '.'
    const cd = /^[\w./-]+$/.test(path) ? path : `'${path.replace(/'/g, "'\\''")}'`
    process.stdout.write(`Created ${target} (${files.length} files).\n\nNext:\n  cd ${cd}\n  ${pm} install\n  ${pm} start\n`)
    return 0
  } catch (err) {
    if (!(err instanceof TargetNotEmptyError)) throw err
    process.stderr.write(`create-fastify-pool: ${err.message}\n`)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
