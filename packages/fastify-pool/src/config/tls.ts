// TLS material: PEM given inline or as file paths, checked up front and
// re-read from its files on restart so that renewed certificates are picked up.
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { constants, X509Certificate } from 'node:crypto'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { TlsConfig } from './types.ts'
import { FST_POOL_TLS } from '../base/errors.ts'

export type { TlsConfig } from './types.ts'

/** Node's server TLS options made from a TlsConfig. */
export type ServerTlsOptions = SecureContextOptions & { requestCert?: boolean, rejectUnauthorized?: boolean }

/**
 * TLS 1.2 suites of Mozilla's "intermediate" profile: ECDHE key exchange
 * (forward secrecy) and AEAD ciphers (AES-GCM, ChaCha20-Poly1305) only, as
 * Caddy offers; no CBC (LUCKY13) and no RSA key exchange. TLS 1.3 suites,
 * all AEAD, come first.
 */
export const DEFAULT_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305'
].join(':')

/** Key-exchange groups of the same profile. */
export const DEFAULT_ECDH_CURVE = 'X25519:prime256v1:secp384r1'

const isPem = (text: string): boolean => text.includes('-----BEGIN ')

/** Read one PEM source; returns the PEM text or a message saying what is wrong. */
function readPem (source: unknown, baseDir: string, what: string, files: string[] | undefined): { pem: string } | { problem: string } {
  if (Buffer.isBuffer(source)) source = source.toString('utf8')
  if (typeof source !== 'string' || source === '') return { problem: `must be PEM text or a path to a PEM file${source === '' ? ' (got an empty string)' : ` (got ${kindOf(source)})`}` }
  if (isPem(source)) return { pem: source }
  // Inline material that is not PEM is never echoed: it may be a key.
  if (source.includes('\n') || source.length > 1024) return { problem: `is neither PEM text (no "-----BEGIN" line) nor a file path (${source.length} characters, not shown)` }
  const file = isAbsolute(source) ? source : resolve(baseDir, source)
  let text: string
  files?.push(file)
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
 * The paths of the files read are added to `files` when it is given.
 */
export function loadTls (tls: TlsConfig, baseDir: string, report: (field: string, message: string) => void, files?: string[]): ServerTlsOptions | undefined {
  let failed = false
  const one = (field: 'cert' | 'key', value: string | Buffer | undefined): string | undefined => {
    if (value === undefined || value === '') {
      report(field, 'is required when TLS is on (PEM text or a path to a PEM file)')
      failed = true
      return undefined
    }
    const got = readPem(value, baseDir, field, files)
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
      const got = readPem(source, baseDir, 'ca', files)
      if ('problem' in got) { report(Array.isArray(tls.ca) ? `ca[${i}]` : 'ca', got.problem); failed = true } else ca?.push(got.pem)
    })
  }
  if (failed) return undefined
  const options: ServerTlsOptions = {
    cert,
    key,
    minVersion: tls.minVersion ?? 'TLSv1.2',
    ciphers: tls.ciphers ?? DEFAULT_CIPHERS,
    ecdhCurve: tls.ecdhCurve ?? DEFAULT_ECDH_CURVE,
    // The server's preference order, and no renegotiation asked by a client.
    honorCipherOrder: true,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ...(ca === undefined ? {} : { ca }),
    ...(tls.passphrase === undefined ? {} : { passphrase: tls.passphrase }),
    ...(tls.requestCert === undefined ? {} : { requestCert: tls.requestCert }),
    ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized })
  }
  // A cipher list or curve OpenSSL does not know is blamed on its own field.
  for (const field of ['ciphers', 'ecdhCurve'] as const) {
    if (tls[field] === undefined) continue
    try {
      createSecureContext({ [field]: tls[field] })
    } catch (err) {
      report(field, `is not usable by OpenSSL: ${(err as Error).message}`)
      failed = true
    }
  }
  if (failed) return undefined
  try {
    // Parses the certificate and key and checks that they belong together.
    createSecureContext(options)
  } catch (err) {
    report('cert', `certificate or key cannot be used: ${(err as Error).message}`)
    return undefined
  }
  return options
}

function kindOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** What a listener's status says of its certificate. */
export interface CertificateInfo {
  /** The subject, one line: `O=..., CN=localhost`. */
  subject: string
  /** ISO time after which clients refuse it. */
  notAfter: string
  /** Whole days left (negative once expired). */
  daysLeft: number
}

/** Days before expiry from which a certificate is warned about. */
export const EXPIRY_WARNING_DAYS = 7

/**
 * The warning for a certificate that has expired or expires within
 * EXPIRY_WARNING_DAYS days; undefined when there is none, or when it is the
 * same certificate as `before` (already warned about).
 */
export function expiryWarning (info: CertificateInfo | undefined, before?: CertificateInfo): string | undefined {
  if (info === undefined || info.daysLeft >= EXPIRY_WARNING_DAYS) return undefined
  if (before !== undefined && before.notAfter === info.notAfter && before.subject === info.subject) return undefined
  return `the TLS certificate ${info.daysLeft < 0 ? `expired on ${info.notAfter}` : `expires on ${info.notAfter} (in ${info.daysLeft} day(s))`}`
}

/** The first certificate of a PEM chain, described; undefined when it cannot be parsed. */
export function certificateInfo (pem: unknown, now = Date.now()): CertificateInfo | undefined {
  if (typeof pem !== 'string' && !Buffer.isBuffer(pem)) return undefined
  try {
    const x = new X509Certificate(pem)
    const notAfter = new Date(x.validTo)
    return { subject: x.subject.split('\n').join(', '), notAfter: notAfter.toISOString(), daysLeft: Math.floor((notAfter.getTime() - now) / 86_400_000) }
  } catch {
    return undefined
  }
}

/**
 * What the served certificate says, for the status, with a warning logged
 * when it has expired or expires soon. `before` is what was served until
 * now: a warning already given for the same certificate is not repeated
 * (pass undefined to always warn).
 */
export function noteCertificate (tls: ServerTlsOptions | undefined, before: CertificateInfo | undefined, log: { warn: (obj: object, msg: string) => void } | undefined): CertificateInfo | undefined {
  const info = tls === undefined ? undefined : certificateInfo(tls.cert)
  const warning = expiryWarning(info, before)
  if (warning !== undefined && info !== undefined) log?.warn({ subject: info.subject, notAfter: info.notAfter }, warning)
  return info
}

/** TLS settings merged over `current` and read; throws FST_POOL_TLS naming every problem. */
export function loadMerged (name: string, current: TlsConfig | undefined, tls: TlsConfig, baseDir: string): { merged: TlsConfig, options: ServerTlsOptions } {
  const merged: TlsConfig = { ...current, ...tls }
  const problems: string[] = []
  const options = loadTls(merged, baseDir, (field, message) => problems.push(`tls.${field}: ${message}`))
  if (options === undefined) throw new FST_POOL_TLS(name, problems.join('; '))
  return { merged, options }
}

/**
 * What the files are now (inode, size, modification time), to tell whether
 * material read from them earlier is still what they hold; undefined when
 * one cannot be looked at.
 */
export function filesStamp (files: readonly string[]): string | undefined {
  try {
    return files.map(f => { const s = statSync(f, { bigint: true }); return `${s.ino}:${s.size}:${s.mtimeNs}` }).join('|')
  } catch {
    return undefined
  }
}
