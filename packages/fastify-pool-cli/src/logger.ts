// The command's logger: pino JSON lines on stdout, or pino-pretty's readable
// lines when asked (--pretty) or when a person is watching (a TTY).
import { pino, type Logger } from 'pino'
import PinoPretty from 'pino-pretty'

export interface LoggerOptions {
  pretty: boolean
  level: string
  stream?: NodeJS.WritableStream
}

export function createLogger ({ pretty, level, stream = process.stdout }: LoggerOptions): Logger {
  if (!pretty) return pino({ level }, pino.destination({ dest: fdOf(stream), sync: true }))
  // In-process and synchronous (no worker thread): every line is out before process.exit().
  return pino({ level }, PinoPretty({
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
