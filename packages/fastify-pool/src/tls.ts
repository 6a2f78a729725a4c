// TLS material: PEM given inline or as file paths, checked up front and
// re-read from its files on restart so that renewed certificates are picked up.
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { TlsConfig } from './types.ts'

export type { TlsConfig } from './types.ts'

/** Node's server TLS options made from a TlsConfig. */
export type ServerTlsOptions = SecureContextOptions & { requestCert?: boolean, rejectUnauthorized?: boolean }

const isPem = (text: string): boolean => text.includes('-----BEGIN ')

/** Read one PEM source; returns the PEM text or a message saying what is wrong. */
function readPem (source: string | Buffer, baseDir: string, what: string): { pem: string } | { problem: string } {
  if (Buffer.isBuffer(source)) source = source.toString('utf8')
  if (isPem(source)) return { pem: source }
  const file = isAbsolute(source) ? source : resolve(baseDir, source)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return { problem: code === 'ENOENT' ? `${what} file not found: ${file}` : `cannot read ${what} file ${file}: ${(err as Error).message}` }
  }
  return isPem(text) ? { pem: text } : { problem: `${what} file ${file} is not PEM (no "-----BEGIN" line)` }
}

/**
 * Load a listener's TLS material into Node server options.
 * Reports every problem through `report(field, message)` and returns undefined if any.
 */
export function loadTls (tls: TlsConfig, baseDir: string, report: (field: string, message: string) => void): ServerTlsOptions | undefined {
  let failed = false
  const one = (field: 'cert' | 'key', value: string | Buffer | undefined): string | undefined => {
    if (value === undefined || value === '') {
      report(field, 'is required when TLS is on (PEM text or a path to a PEM file)')
      failed = true
      return undefined
    }
    const got = readPem(value, baseDir, field)
    if ('problem' in got) { report(field, got.problem); failed = true; return undefined }
    return got.pem
  }
  const cert = one('cert', tls.cert)
  const key = one('key', tls.key)
  let ca: string[] | undefined
  if (tls.ca !== undefined) {
    ca = []
    const list = Array.isArray(tls.ca) ? tls.ca : [tls.ca]
    list.forEach((source, i) => {
      const got = readPem(source, baseDir, 'ca')
      if ('problem' in got) { report(Array.isArray(tls.ca) ? `ca[${i}]` : 'ca', got.problem); failed = true } else ca?.push(got.pem)
    })
  }
  if (failed) return undefined
  const options: ServerTlsOptions = {
    cert,
    key,
    minVersion: tls.minVersion ?? 'TLSv1.2',
    ...(ca === undefined ? {} : { ca }),
    ...(tls.passphrase === undefined ? {} : { passphrase: tls.passphrase }),
    ...(tls.requestCert === undefined ? {} : { requestCert: tls.requestCert }),
    ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized })
  }
  try {
    // Parses the certificate and key and checks that they belong together.
    createSecureContext(options)
  } catch (err) {
    report('cert', `certificate or key cannot be used: ${(err as Error).message}`)
    return undefined
  }
  return options
}
