// Entry point of the `fastify-pool` command: parse the arguments, run a command,
// turn usage mistakes into a short message and exit code 2.
import { readFileSync } from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { findConfigFile } from './find-config.ts'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

const HELP = `Usage: fastify-pool <command> [file] [options]

Run a pool of Fastify listeners from a configuration file.

Commands:
  start      Start every listener and serve until SIGTERM or SIGINT (SIGHUP reloads the file)
  validate   Check the configuration file and print every problem

The file is the pool configuration, given as an argument or with -c
(default: pool.yaml, pool.yml, pool.json, pool.mjs or pool.js in the
working directory).

Options:
  -c, --config <file>  Configuration file (the same as the argument)
      --pretty         Readable logs (the default when stdout is a terminal)
      --json           JSON logs, one object per line (the default otherwise)
      --dev-cert       (start) Where the file names TLS certificate and key files
                       that do not exist, write a self-signed certificate for
                       localhost there first. For development only.
      --verbose        Print stack traces of unexpected errors
  -h, --help           Show this help
  -v, --version        Show the version

Documentation: https://www.npmjs.com/package/fastify-pool-cli
`

const COMMANDS = {
  start: {
    config: { type: 'string', short: 'c' },
    pretty: { type: 'boolean' },
    json: { type: 'boolean' },
    'dev-cert': { type: 'boolean' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  },
  validate: {
    config: { type: 'string', short: 'c' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
} satisfies Record<string, ParseArgsConfig['options']>

class UsageError extends Error {}

// Set from --verbose: unexpected errors print their stack.
let verbose = false

export async function main (argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined) {
    process.stderr.write(HELP)
    return 2
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
  if (!Object.hasOwn(COMMANDS, first)) {
    throw new UsageError(first.startsWith('-')
      ? `unknown option "${first}"; a command comes first: start or validate`
      : `unknown command "${first}"; expected start or validate`)
  }
  const command = first as keyof typeof COMMANDS
  let values: { config?: string, pretty?: boolean, json?: boolean, help?: boolean, verbose?: boolean, 'dev-cert'?: boolean }
  let positionals: string[]
  try {
    const parsed = parseArgs({ args: rest, options: COMMANDS[command], strict: true, allowPositionals: true })
    values = parsed.values as typeof values
    positionals = parsed.positionals
  } catch (err) {
    throw new UsageError(`${command}: ${usageMessage(err as Error & { code?: string })}`)
  }
  verbose = values.verbose === true
  // `fastify-pool start pool.yaml`, as `fastify start app.js`; or -c pool.yaml.
  if (positionals.length > 1) throw new UsageError(`${command}: one configuration file at most (got ${positionals.map(p => `"${p}"`).join(', ')})`)
  const given = positionals[0]
  if (given !== undefined && values.config !== undefined && given !== values.config) {
    throw new UsageError(`${command}: the file is given twice ("${given}" and -c "${values.config}")`)
  }
  if (values.help === true) {
    process.stdout.write(HELP)
    return 0
  }
  if (values.pretty === true && values.json === true) throw new UsageError(`${command}: --pretty and --json cannot be used together`)
  const file = findConfigFile(given ?? values.config)
  // Loaded on demand: --help, --version and usage errors stay fast.
  if (command === 'validate') return (await import('./validate.ts')).validate(file)
  return (await import('./start.ts')).start({
    file,
    pretty: values.pretty ?? (values.json === true ? false : process.stdout.isTTY === true),
    devCert: values['dev-cert'] === true,
    verbose
  })
}

function usageMessage (err: Error & { code?: string }): string {
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? ''
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return `unknown option "${quoted}"`
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': return `unexpected argument "${quoted}"`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(err.message) ? `option ${quoted} needs a value` : `option ${quoted} takes no value`
    default: return err.message
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`fastify-pool: ${err.message}\nRun "fastify-pool --help" for usage.\n`)
    process.exitCode = 2
  } else {
    const message = err instanceof Error ? err.message : String(err)
    process.stderr.write(verbose || !(err instanceof Error)
      ? `fastify-pool: ${(err as Error).stack ?? String(err)}\n`
      : `fastify-pool: ${message}\n(run with --verbose for the stack trace)\n`)
    process.exitCode = 1
  }
}
