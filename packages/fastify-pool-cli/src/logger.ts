// The command's logger: pino JSON lines on stdout, or pino-pretty's readable
// lines when asked (--pretty) or when a person is watching (a TTY).
import { pino, type Logger } from 'pino'
import PinoPretty from 'pino-pretty'
import { REDACT_PATHS } from 'fastify-pool'

export interface LoggerOptions {
  pretty: boolean
  level: string
  stream?: NodeJS.WritableStream
}

export function createLogger ({ pretty, level, stream = process.stdout }: LoggerOptions): Logger {
  // TLS keys and passphrases in a logged configuration are replaced by [redacted].
  const redact = { paths: [...REDACT_PATHS], censor: '[redacted]' }
  if (!pretty) return pino({ level, redact }, pino.destination({ dest: fdOf(stream), sync: true }))
  // In-process and synchronous (no worker thread): every line is out before process.exit().
  return pino({ level, redact }, PinoPretty({
    destination: stream,
    sync: true,
    colorize: (stream as { isTTY?: boolean }).isTTY === true && process.env.NO_COLOR === undefined,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname'
  }))
}

function fdOf (stream: NodeJS.WritableStream): number {
  const fd = (stream as { fd?: number }).fd
  return typeof fd === 'number' ? fd : 1
}
