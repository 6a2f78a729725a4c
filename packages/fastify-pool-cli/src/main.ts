// Entry point of the `fastify-pool` command: parse the arguments, run a command,
// turn usage mistakes into a short message and exit code 2.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import cluster from 'node:cluster'
import { releaseEarlySignals } from './early-signals.ts'
import { DEFAULT_NAMES, findConfigFile } from './find-config.ts'
import { displayPath } from './file-issue.ts'
import { COMMAND_HELP, completion } from './help.ts'
import { causeCode, useJson, writeError } from './output.ts'
import { UsageError } from './usage-error.ts'
import { didYouMean } from 'fastify-pool/errors'

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

const HELP = `Usage: fastify-pool <command> [file] [options]

Run a pool of Fastify listeners from a configuration file.

Commands:
  start      Start every listener and serve until SIGTERM or SIGINT (SIGHUP reloads the file)
  validate   Check the configuration file and print every problem

Commands for a running pool (through the control API its file configures):
  ps                 The state of every listener
  restart [GLOB]     Restart the listeners whose name matches (all without GLOB)
  stop GLOB          Drain and stop the listeners whose name matches
  reload             Re-read the file and apply it in place
  canary promote|abort [GLOB]  End a running canary (restart or reload --canary)
  upgrade            Replace the whole process (new Node, dependencies, code) without closing a port

  help <command>     What a command takes: its arguments, options, exit codes, an example
  completion bash|zsh  Print a shell completion script

The file is the pool configuration, given as an argument or with -c
(default: pool.yaml, pool.yml, pool.json, pool.mjs or pool.js in the
working directory).

Options:
  -c, --config <file>  Configuration file (the same as the argument)
      --env-file <f>   Read environment variables from this file first (KEY=value lines)
      --pretty         Readable logs (the default when stdout is a terminal)
      --json           JSON logs, one object per line (the default otherwise);
                       for the other commands: the answer as JSON. Every line on
                       stdout and stderr is then one JSON object, errors too
      --dev-cert       (start) Where the file names TLS certificate and key files
                       that do not exist, write a self-signed certificate for
                       localhost there first. For development only.
      --watch          (start) Reload when the file or a handler module changes.
                       For development only.
                       (ps, also -w) Refresh every 2 s, in place on a terminal
      --workers <n>    (start) Run the pool in n processes sharing its sockets
                       (node:cluster), or "auto" for one per core
      --pid-file <f>   (start) Write the pid of the process that owns the pool there
                       (with --workers the primary's; an upgrade's successor writes its own)
      --node <path>    (upgrade) Run the new process with this node binary
      --timeout <ms>   (upgrade) How long the new process may take to be ready
                       (default 60000)
  -l, --log-level <l>  (start) Log level of the command and of every listener
                       whose file section sets none: fatal, error, warn, info,
                       debug, trace or silent (default: the file's, else info)
      --canary <pct>   (restart, reload) Serve the new code on PCT % of the requests
                       beside the old, judged: exit 0 promoted, 1 rolled back
      --bind           (restart, stop, canary) GLOB matches listen addresses, not names
      --force          (stop) Stop the listener that serves the control API too;
                       every command is cut off from the pool until a restart
      --token <token>  (ps, restart, stop, reload, upgrade) The control token, if not the
                       file's (also FASTIFY_POOL_TOKEN)
      --verbose        Print stack traces of unexpected errors
  -h, --help           Show this help
  -v, --version        Show the version

Documentation: https://www.npmjs.com/package/fastify-pool-cli
`

const COMMON = {
  config: { type: 'string', short: 'c' },
  'env-file': { type: 'string' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const
const OPERATE = { ...COMMON, json: { type: 'boolean' }, token: { type: 'string' } } as const
const COMMANDS = {
  start: { ...COMMON, pretty: { type: 'boolean' }, json: { type: 'boolean' }, 'dev-cert': { type: 'boolean' }, watch: { type: 'boolean' }, workers: { type: 'string' }, 'log-level': { type: 'string', short: 'l' }, 'pid-file': { type: 'string' } },
  validate: { ...COMMON, json: { type: 'boolean' } },
  ps: { ...OPERATE, watch: { type: 'boolean', short: 'w' } },
  restart: { ...OPERATE, bind: { type: 'boolean' }, canary: { type: 'string' } },
  stop: { ...OPERATE, bind: { type: 'boolean' }, force: { type: 'boolean' } },
  reload: { ...OPERATE, canary: { type: 'string' } },
  canary: { ...OPERATE, bind: { type: 'boolean' } },
  upgrade: { ...OPERATE, node: { type: 'string' }, timeout: { type: 'string' } },
  completion: { help: { type: 'boolean', short: 'h' } }
} satisfies Record<string, ParseArgsConfig['options']>
const NAMES = Object.keys(COMMANDS).join(', ')
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Values of every command's options (each command accepts only its own). */
interface Values {
  config?: string
  'env-file'?: string
  pretty?: boolean
  json?: boolean
  help?: boolean
  verbose?: boolean
  'dev-cert'?: boolean
  'log-level'?: string
  watch?: boolean
  bind?: boolean
  force?: boolean
  token?: string
  workers?: string
  'pid-file'?: string
  node?: string
  timeout?: string
  canary?: string
}

// Set from --verbose: unexpected errors print their stack.
let verbose = false

export async function main (argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  // Only `start` honours a signal that came while it loaded; for the rest a signal does what it always does.
  if (first !== 'start') releaseEarlySignals()
  // Before the arguments are parsed (a usage error is reported in JSON too).
  useJson(argv.includes('--json'))
  if (first === undefined) {
    process.stderr.write(HELP)
    return 2
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined
    // `help --help` is help too.
    if (topic === undefined || topic === '--help' || topic === '-h') {
      process.stdout.write(HELP)
      return 0
    }
    if (!Object.hasOwn(COMMAND_HELP, topic)) throw new UsageError(`help: unknown command "${topic}"; expected one of ${NAMES}${didYouMean(topic, Object.keys(COMMAND_HELP))}`)
    process.stdout.write(COMMAND_HELP[topic as keyof typeof COMMAND_HELP])
    return 0
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(`${VERSION}\n`)
    return 0
  }
  if (!Object.hasOwn(COMMANDS, first)) {
    throw new UsageError(first.startsWith('-')
      ? `unknown option "${first}"; a command comes first: ${NAMES}${didYouMean(first, ['--help', '--version'])}`
      : `unknown command "${first}"; expected one of ${NAMES}${didYouMean(first, [...Object.keys(COMMANDS), 'help'])}`)
  }
  const command = first as keyof typeof COMMANDS
  let values: Values
  let positionals: string[]
  try {
    const parsed = parseArgs({ args: rest, options: COMMANDS[command], strict: true, allowPositionals: true })
    values = parsed.values as typeof values
    positionals = parsed.positionals
  } catch (err) {
    throw new UsageError(`${command}: ${usageMessage(err as Error & { code?: string }, Object.keys(COMMANDS[command]).map(o => `--${o}`))}`)
  }
  verbose = values.verbose === true
  if (values.help === true) {
    process.stdout.write(COMMAND_HELP[command])
    return 0
  }
  if (command === 'completion') return completion(positionals)
  // `canary promote|abort [GLOB] [file]`: the action first.
  let canaryAction: 'promote' | 'abort' | undefined
  if (command === 'canary') {
    const action = positionals.shift()
    if (action !== 'promote' && action !== 'abort') throw new UsageError(`canary: promote or abort? (got ${action === undefined ? 'nothing' : `"${action}"`})${action === undefined ? '' : didYouMean(action, ['promote', 'abort'])}`)
    canaryAction = action
  }
  let canary: number | undefined
  if (values.canary !== undefined) {
    canary = Number(values.canary.replace(/%$/, ''))
    if (!/^\d+(\.\d+)?%?$/.test(values.canary) || !(canary >= 1 && canary <= 99)) throw new UsageError(`${command}: --canary takes a percentage from 1 to 99 (got "${values.canary}")`)
  }
  const { file, globs, named } = fileAndGlobs(command, positionals, values)
  // No file named and none of the default names here (checked once the arguments are): say which were looked for, and where.
  const missing = (): boolean => {
    if (named || existsSync(file)) return false
    const message = `file not found (looked for ${DEFAULT_NAMES.join(', ')} in ${dirname(file)}; name the file: fastify-pool ${command} FILE)`
    writeError({ code: 'FST_POOL_VALIDATE', message, file: displayPath(file) }, `${displayPath(file)}: ${message}`)
    return true
  }
  if (command === 'validate') return missing() ? 1 : (await import('./validate.ts')).validate(file, values.json === true)
  // Loaded on demand: --help, --version and usage errors stay fast.
  if (command !== 'start') {
    let timeout: number | undefined
    if (values.timeout !== undefined) {
      timeout = Number(values.timeout)
      if (!(Number.isInteger(timeout) && timeout > 0)) throw new UsageError(`upgrade: --timeout takes a whole number of milliseconds above 0 (got "${values.timeout}")`)
    }
    if (missing()) return 1
    return (await import('./operate.ts')).operate({
      ...(timeout === undefined ? {} : { timeout }),
      ...(canary === undefined ? {} : { canary }),
      ...(canaryAction === undefined ? {} : { canaryAction }),
      ...(values.node === undefined ? {} : { node: values.node }),
      file,
      command,
      ...(globs[0] === undefined ? {} : { selector: globs[0] }),
      field: values.bind === true ? 'bind' : 'name',
      json: values.json === true,
      force: values.force === true,
      watch: command === 'ps' && values.watch === true,
      ...(values.token === undefined ? {} : { token: values.token })
    })
  }
  const logLevel = values['log-level']
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel)) throw new UsageError(`start: --log-level takes one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`)
  // The log is JSON unless a person watches; errors on stderr are JSON when --json says so.
  const pretty = values.pretty ?? (values.json === true ? false : process.stdout.isTTY === true)
  const { start, workersFlag } = await import('./start.ts')
  const workers = values.workers === undefined ? undefined : workersFlag(values.workers)
  if (missing()) return 1
  return start({
    file,
    pretty,
    ...(logLevel === undefined ? {} : { logLevel }),
    devCert: values['dev-cert'] === true,
    watch: values.watch === true,
    ...(workers === undefined ? {} : { workers }),
    ...(values['pid-file'] === undefined ? {} : { pidFile: values['pid-file'] }),
    verbose
  })
}

/**
 * The file (an argument, as `fastify start app.js`, or -c) and, for restart
 * and stop, the glob: the file is the argument with a config file's extension.
 */
function fileAndGlobs (command: keyof typeof COMMANDS, positionals: string[], values: Values): { file: string, globs: string[], named: boolean } {
  const takesGlob = command === 'restart' || command === 'stop' || command === 'canary'
  const files = takesGlob ? positionals.filter(isConfigFileName) : positionals
  const globs = takesGlob ? positionals.filter(p => !isConfigFileName(p)) : []
  if (files.length > 1) throw new UsageError(`${command}: one configuration file at most (got ${files.map(p => `"${p}"`).join(', ')})`)
  if (globs.length > 1) throw new UsageError(`${command}: one glob at most (got ${globs.map(p => `"${p}"`).join(', ')}); a glob such as 'public-*' matches several listeners`)
  if (command === 'stop' && globs.length === 0) throw new UsageError('stop: which listeners? Give a name or a glob (to stop the whole pool, send it SIGTERM)')
  const given = files[0]
  if (given !== undefined && values.config !== undefined && given !== values.config) {
    throw new UsageError(`${command}: the file is given twice ("${given}" and -c "${values.config}")`)
  }
  if (values.pretty === true && values.json === true) throw new UsageError(`${command}: --pretty and --json cannot be used together`)
  if (values['env-file'] !== undefined) loadEnvFile(values['env-file'])
  return { file: findConfigFile(given ?? values.config), globs, named: (given ?? values.config) !== undefined }
}

function isConfigFileName (arg: string): boolean {
  return /\.(ya?ml|json|m?js|cjs)$/i.test(arg)
}

/** --env-file: variables from the file, for ${VAR} in the pool file; those already set win, as with node --env-file. */
function loadEnvFile (file: string): void {
  // Node 20 ends the process (exit 9) on a file it cannot open, instead of throwing.
  try {
    accessSync(file, constants.R_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new UsageError(`--env-file: ${code === 'ENOENT' ? `no such file: ${file}` : `cannot read ${file} (${code ?? 'error'})`}`)
  }
  try {
    process.loadEnvFile(file)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new UsageError(`--env-file: ${e.code === 'ENOENT' ? `no such file: ${file}` : e.message}`)
  }
}

/** parseArgs's error in the command's words; an unknown option with the nearest of `known` (`--wrokers`: did you mean "--workers"?). */
function usageMessage (err: Error & { code?: string }, known: string[]): string {
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? ''
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return `unknown option "${quoted}"${didYouMean(quoted, known)}`
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': return `unexpected argument "${quoted}"`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const option = quoted.split(' ')[0] ?? quoted
      if (/argument missing/.test(err.message)) return `option ${quoted} needs a value`
      // `--pid-file -p.pid`: Node will not take a value that looks like an option without `=`.
      if (/ambiguous/.test(err.message)) return `option ${option} needs a value; one that starts with "-" is written ${option}=VALUE`
      return `option ${quoted} takes no value`
    }
    default: return err.message
  }
}

try {
  process.exitCode = await main(process.argv.slice(2))
  // A cluster worker's IPC channel would keep it alive after a failed start.
  if (cluster.isWorker && process.exitCode !== 0) process.exit(process.exitCode)
} catch (err) {
  if (err instanceof UsageError) {
    writeError({ code: 'FST_POOL_USAGE', message: err.message }, `fastify-pool: ${err.message}\nRun "fastify-pool --help" for usage.`)
    process.exitCode = 2
  } else {
    const message = err instanceof Error ? err.message : String(err)
    const code = (err as { code?: unknown }).code
    const cause = causeCode(err)
    writeError({ code: typeof code === 'string' ? code : 'FST_POOL_UNEXPECTED', message, ...(cause === undefined ? {} : { cause }), ...(verbose && err instanceof Error ? { stack: err.stack } : {}) }, verbose || !(err instanceof Error)
      ? `fastify-pool: ${(err as Error).stack ?? String(err)}`
      : `fastify-pool: ${message}\n(run with --verbose for the stack trace)`)
    process.exitCode = 1
  }
}
