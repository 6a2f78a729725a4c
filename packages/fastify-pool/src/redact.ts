// Secrets never reach a log: the paths of TLS private material in the
// objects this library and its command log (configurations as given, in any
// of the shapes they are logged), in pino's `redact` syntax. One list.

const SECRETS = ['key', 'passphrase', 'pfx']
const HOLDERS = [
  'tls', '*.tls',
  'servers[*].tls', 'servers[*].source.tls', 'defaults.tls',
  'config.tls', 'config.source.tls', 'source.tls',
  'options.servers[*].tls', 'options.defaults.tls'
]

/** Paths to redact in log lines, for pino's `redact` option. */
export const REDACT_PATHS: readonly string[] = Object.freeze(HOLDERS.flatMap(h => SECRETS.map(s => `${h}.${s}`)))

/** pino's `redact` option for a logger of this library. */
export const REDACT = Object.freeze({ paths: [...REDACT_PATHS], censor: '[redacted]' })
