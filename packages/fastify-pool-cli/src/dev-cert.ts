// Self-signed development certificates, so that the starter's HTTPS listener
// works on first run without openssl. Built with the `selfsigned` package:
// X.509 encoding is easy to get subtly wrong by hand. It is imported when a
// certificate is made, not when this module loads: every command start would
// otherwise pay for its dependencies (about 140 ms), which only --dev-cert needs.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { isIP } from 'node:net'

/** The organisation of every certificate --dev-cert makes: how it recognises its own when renewing. */
export const DEV_CERT_ORGANIZATION = 'fastify-pool development certificate'

export interface DevCertificateOptions {
  /** Host names and IP addresses the certificate is valid for (default: localhost, 127.0.0.1, ::1). */
  hosts?: readonly string[]
  /** Days of validity (default 30: a development certificate should not live long). */
  days?: number
}

export interface DevCertificate {
  cert: string
  key: string
}

/** A self-signed certificate and its key (EC P-256), valid for the given hosts. */
export async function createDevCertificate (options: DevCertificateOptions = {}): Promise<DevCertificate> {
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1']
  const days = options.days ?? 30
  if (hosts.length === 0) throw new TypeError('hosts must name at least one host')
  const { generate } = await import('selfsigned')
  const now = Date.now()
  const pems = await generate([
    { name: 'organizationName', value: DEV_CERT_ORGANIZATION },
    { name: 'commonName', value: hosts[0] as string }
  ], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    // An hour of slack for clocks that are a little behind (and a day before
    // notAfter, for the tests' already expired certificates).
    notBeforeDate: new Date(Math.min(now - 3_600_000, now + (days - 1) * 86_400_000)),
    notAfterDate: new Date(now + days * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: hosts.map(h => isIP(h) === 0 ? { type: 2 as const, value: h } : { type: 7 as const, ip: h }) }
    ]
  })
  // Fail here, not at the first TLS handshake, if the result is unusable.
  const parsed = new X509Certificate(pems.cert)
  if (!parsed.checkPrivateKey(createPrivateKey(pems.private))) throw new Error('the generated certificate does not match its key')
  return { cert: pems.cert, key: pems.private }
}

/** Write a new development certificate and key (the key readable by the owner only). */
export async function writeDevCertificate (certFile: string, keyFile: string, options?: DevCertificateOptions): Promise<void> {
  const { cert, key } = await createDevCertificate(options)
  await mkdir(dirname(certFile), { recursive: true })
  await mkdir(dirname(keyFile), { recursive: true })
  await writeFile(keyFile, key, { mode: 0o600 })
  await writeFile(certFile, cert)
}
