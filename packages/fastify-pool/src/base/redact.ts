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

// The control API's token, where a configuration is logged, and the header
// that carries it, where a request is.
const TOKENS = ['control.token', 'options.control.token', 'req.headers.authorization', 'headers.authorization']

/** Paths to redact in log lines, for pino's `redact` option. */
export const REDACT_PATHS: readonly string[] = Object.freeze([...HOLDERS.flatMap(h => SECRETS.map(s => `${h}.${s}`)), ...TOKENS])

/** pino's `redact` option for a logger of this library. */
export const REDACT = Object.freeze({ paths: [...REDACT_PATHS], censor: '[redacted]' })
