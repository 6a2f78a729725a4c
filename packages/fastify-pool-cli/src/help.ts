// `fastify-pool help <command>` and `<command> --help`: what one command
// takes, its exit codes and an example; and `fastify-pool completion`.
import { UsageError } from './usage-error.ts'

const FILE = `The file is the pool configuration, as an argument or with -c (default:
pool.yaml, pool.yml, pool.json, pool.mjs or pool.js in the working directory).`

const OPERATE_OPTIONS = `  -c, --config <file>  The pool file: its control section says where the pool listens
      --token <token>  The control token, if not the file's (also FASTIFY_POOL_TOKEN)
      --json           Print the answer, and any error, as JSON lines
      --env-file <f>   Read environment variables from this file first`

const OPERATE_EXIT = `Exit codes: 0 done; 1 refused or failed; 2 usage error; 3 nothing answers at
the control listener; 4 the token is missing or wrong; 5 no listener matches.`

export const COMMAND_HELP = {
  start: `Usage: fastify-pool start [file] [options]

Start every listener of the file and serve until SIGTERM or SIGINT, which run
the shutdown sequence (readiness 503 for defaults.shutdownDelay, then the
drain within defaults.stopTimeout). SIGHUP reloads the file in place;
SIGUSR2 replaces the process (see fastify-pool help upgrade).
${FILE}

Options:
  -c, --config <file>    The pool file
  -l, --log-level <l>    fatal, error, warn, info, debug, trace or silent: the level of
                         the command and of every listener whose section sets none
      --pretty | --json  Readable logs, or JSON lines (the log's format anyway when
                         stdout is not a terminal; --json makes errors on stderr JSON
                         lines too)
      --workers <n|auto> Run the pool in n processes sharing its sockets
      --watch            Reload when the file or a handler module changes (development)
      --dev-cert         Write a self-signed localhost certificate where the file names
                         TLS files that do not exist (development)
      --pid-file <f>     Write there, atomically, the pid of the process that owns the
                         pool (with --workers the primary's; after an upgrade the new
                         process writes its own)
      --env-file <f>     Read environment variables from this file first
      --verbose          Print stack traces of unexpected errors

Run by npm start or pnpm start, it also drains when the package manager is
gone (FASTIFY_POOL_PARENT_WATCH=off: not).

Exit codes: 0 stopped by a signal after the drain (or before anything started);
1 an invalid file, a listener that could not start, an uncaught error, a second
signal (the same one again within 0.5 s is the same stop), or a drain over its
deadline + 5 s; 2 usage error.

Example:
  fastify-pool start pool.yaml --log-level debug
`,
  validate: `Usage: fastify-pool validate [file] [options]

Load the file as start would (handler modules and TLS files included) and
print every problem with its path (and line:column for syntax errors).
${FILE}

Options:
  -c, --config <file>  The pool file
      --json           Every problem as a JSON line on stderr; success as one on stdout
      --env-file <f>   Read environment variables from this file first

Exit codes: 0 valid; 1 problems; 2 usage error.

Example:
  fastify-pool validate pool.yaml
`,
  ps: `Usage: fastify-pool ps [file] [options]

The state of every listener of the running pool (of every worker with
--workers): state, URL, generation (and those still retiring), uptime,
requests in flight, upgraded connections, certificate expiry, last error.

Options:
  -w, --watch          Refresh every 2 s until Ctrl-C, in place on a terminal (like
                       top); with --json, one answer per line
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Example:
  fastify-pool ps --json | jq '.listeners[] | select(.state != "running")'
`,
  restart: `Usage: fastify-pool restart [GLOB] [file] [options]

Give the listeners whose name matches GLOB (all without it) a new generation
on their socket: new connections and requests reach it at once, the old one
finishes what it has. The port never closes. With --workers, in every worker:
one line per listener and worker.

With --canary PCT the new generation first serves PCT % of the requests
beside the old one and is judged against it (5xx share and p99, over 20 s):
promoted, or rolled back at once if it answers clearly worse. The command
waits for the verdict: exit 0 promoted, 1 rolled back or aborted (one line
says which criterion, with both generations' figures). With --workers the
canary runs in one worker first; promoted there, every worker restarts.

Options:
      --bind           GLOB matches listen addresses (127.0.0.1:*), not names
      --canary <pct>   Judge the new generation on PCT % of the requests first
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Examples:
  fastify-pool restart 'public-*'
  fastify-pool restart api --canary 10
`,
  stop: `Usage: fastify-pool stop GLOB [file] [options]

Drain and stop the listeners whose name matches GLOB (with --workers, in
every worker). Stopping the listener that serves the control API is refused
without --force (every command would be cut off until a reload). To stop
the whole pool, send it SIGTERM.

Options:
      --bind           GLOB matches listen addresses, not names
      --force          Stop the control listener too
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Example:
  fastify-pool stop blue
`,
  reload: `Usage: fastify-pool reload [file] [options]

Re-read the file and apply it in place, as SIGHUP does: unchanged listeners
are left alone, changed ones get a new generation on their socket, added ones
start, removed ones drain. An invalid file changes nothing.

With --canary PCT each changed listener's new generation (the file's
settings and its handler modules read afresh) first serves PCT % of the
requests and is judged (see fastify-pool help restart): exit 0 when every
one was promoted, 1 when one was rolled back (it keeps its previous
configuration). With --workers it is judged in one worker first, on PCT ×
workers % of that worker's requests; promoted there, every worker is
replaced by a rolling reload. A file that adds, removes or moves listeners
is refused with --canary under --workers.

Options:
      --canary <pct>   Judge each changed listener on PCT % of the requests first
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Examples:
  fastify-pool reload && fastify-pool ps
  fastify-pool reload --canary 10
`,
  canary: `Usage: fastify-pool canary promote|abort [GLOB] [file] [options]

End a running canary (restart or reload --canary) by hand: promote makes
the new generation serve every request now; abort keeps the serving one
and retires the canary. Without GLOB, every listener with a canary. The
waiting restart or reload command then exits with the result.

Options:
      --bind           GLOB matches listen addresses, not names
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Example:
  fastify-pool canary abort api
`,
  upgrade: `Usage: fastify-pool upgrade [file] [options]

Replace the whole running process without closing a port, as SIGUSR2 does:
it starts a new process with the same command line (the node the command
names now, the file and handler modules read afresh) and hands it every
listening socket; once all its listeners are ready, the old process drains
(requests on its open connections are answered with Connection: close) and
exits 0. A new process that fails, exits or is not ready in time is stopped,
and the old one serves on unchanged. With --workers the primary and every
worker are replaced: the new primary forks its workers on the same sockets,
and the old workers hand over once every new one is ready.

Refused while the pool starts or stops, during a reload or another upgrade,
and for a pool that runs in a terminal, in a container (as its pid 1 or the
child of its init) or under a package manager (npm start): the new process
would not be the terminal's job, and the container or the package manager
would end with the old one. There, reload it (fastify-pool reload, SIGHUP,
--watch) or restart it instead.

Options:
      --node <path>    Run the new process with this node binary (taken only
                       from a control listener on loopback or a unix socket)
      --timeout <ms>   How long the new process may take to be ready (default 60000)
${OPERATE_OPTIONS}

${OPERATE_EXIT}

Example:
  fastify-pool upgrade --node /opt/node-24/bin/node && fastify-pool ps
`,
  completion: `Usage: fastify-pool completion bash|zsh

Print a completion script for the shell: commands, options, pool files.

Example:
  fastify-pool completion bash > ~/.local/share/bash-completion/completions/fastify-pool
  fastify-pool completion zsh > "\${fpath[1]}/_fastify-pool"
`
} as const

const COMMANDS = Object.keys(COMMAND_HELP)
const OPTIONS: Record<string, string> = {
  start: '-c --config -l --log-level --pretty --json --workers --watch --dev-cert --pid-file --env-file --verbose -h --help',
  validate: '-c --config --json --env-file -h --help',
  ps: '-c --config --token --json -w --watch --env-file -h --help',
  restart: '-c --config --bind --canary --token --json --env-file -h --help',
  stop: '-c --config --bind --force --token --json --env-file -h --help',
  reload: '-c --config --canary --token --json --env-file -h --help',
  canary: 'promote abort -c --config --bind --token --json --env-file -h --help',
  upgrade: '-c --config --node --timeout --token --json --env-file -h --help',
  completion: 'bash zsh'
}

function bash (): string {
  const cases = Object.entries(OPTIONS).map(([c, o]) => `    ${c}) opts="${o}" ;;`).join('\n')
  return `# fastify-pool completion for bash: source it, or put it in bash-completion's folder.
_fastify_pool () {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${COMMANDS.join(' ')} help --help --version" -- "$cur") )
    return
  fi
  case "$prev" in
    -c|--config|--env-file|--pid-file|--node) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    -l|--log-level) COMPREPLY=( $(compgen -W "fatal error warn info debug trace silent" -- "$cur") ); return ;;
    help) COMPREPLY=( $(compgen -W "${COMMANDS.join(' ')}" -- "$cur") ); return ;;
  esac
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") $(compgen -f -X '!*.@(yaml|yml|json|js|mjs|cjs)' -- "$cur") )
}
complete -o filenames -F _fastify_pool fastify-pool
`
}

function zsh (): string {
  const cases = Object.entries(OPTIONS).map(([c, o]) => `    ${c}) _arguments '*:file:_files -g "*.(yaml|yml|json|js|mjs|cjs)"' && compadd -- ${o} ;;`).join('\n')
  return `#compdef fastify-pool
# fastify-pool completion for zsh: put it in a folder of $fpath as _fastify-pool.
_fastify_pool () {
  if (( CURRENT == 2 )); then
    compadd -- ${COMMANDS.join(' ')} help --help --version
    return
  fi
  case "$words[2]" in
${cases}
  esac
}
_fastify_pool "$@"
`
}

/** `fastify-pool completion bash|zsh`. */
export function completion (args: string[]): number {
  const shell = args[0]
  if (shell === 'bash') process.stdout.write(bash())
  else if (shell === 'zsh') process.stdout.write(zsh())
  else throw new UsageError(`completion: which shell? bash or zsh (got ${shell === undefined ? 'nothing' : `"${shell}"`})`)
  return 0
}
