// Self-signed development certificates, made with node:crypto alone. Node
// can make and sign keys but has no API to build an X.509 certificate, so the
// few DER structures of RFC 5280 that one needs are encoded here; the result
// is checked with X509Certificate before it is returned.
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { isIPv4, isIPv6 } from 'node:net'

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

// --- DER (ITU-T X.690), only what a certificate needs ------------------------
function length (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}
const sequence = (...parts: Buffer[]): Buffer => tlv(0x30, ...parts)
const set = (...parts: Buffer[]): Buffer => tlv(0x31, ...parts)
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 + n, inner)
const octets = (inner: Buffer): Buffer => tlv(0x04, inner)
const utf8 = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'))
const bool = (value: boolean): Buffer => tlv(0x01, Buffer.from([value ? 0xff : 0]))
const bits = (inner: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.from([unused]), inner)

function integer (bytes: Buffer): Buffer {
  // DER integers are signed: a leading 1 bit needs a zero byte in front.
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes)
}

function oid (dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number)
  const out = [40 * a + b]
  for (const n of rest) {
    const group = [n & 0x7f]
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) group.unshift(0x80 | (v & 0x7f))
    out.push(...group)
  }
  return tlv(0x06, Buffer.from(out))
}

function time (date: Date): Buffer {
  // UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5).
  const full = date.toISOString().slice(0, 19).replace(/[-:T]/g, '') + 'Z'
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(full.slice(2))) : tlv(0x18, Buffer.from(full))
}

function ipBytes (ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number))
  const [head = '', tail] = ip.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  return Buffer.from(groups.flatMap(g => { const n = parseInt(g, 16); return [n >> 8, n & 0xff] }))
}

const ECDSA_SHA256 = sequence(oid('1.2.840.10045.4.3.2'))

function extension (id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [bool(true)] : []), octets(value))
}

/** A self-signed certificate and its key (EC P-256), valid for the given hosts. */
export function createDevCertificate (options: DevCertificateOptions = {}): DevCertificate {
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1']
  const days = options.days ?? 30
  if (hosts.length === 0) throw new TypeError('hosts must name at least one host')
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const name = sequence(
    set(sequence(oid('2.5.4.10'), utf8('fastify-pool development certificate'))),
    set(sequence(oid('2.5.4.3'), utf8(hosts[0] as string)))
  )
  const now = Date.now()
  const altNames = sequence(...hosts.map(h => isIPv4(h) || isIPv6(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'ascii'))))
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    ECDSA_SHA256,
    name,
    sequence(time(new Date(now - 3_600_000)), time(new Date(now + days * 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(
      extension('2.5.29.19', true, sequence()), // basicConstraints: not a CA
      extension('2.5.29.15', true, bits(Buffer.from([0x80]), 7)), // keyUsage: digitalSignature
      extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
      extension('2.5.29.17', false, altNames) // subjectAltName
    ))
  )
  const der = sequence(tbs, ECDSA_SHA256, bits(sign('sha256', tbs, privateKey)))
  const cert = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END CERTIFICATE-----\n`
  // The encoder is ours: let OpenSSL (through Node) confirm the result.
  const parsed = new X509Certificate(cert)
  if (!parsed.verify(publicKey)) throw new Error('the generated certificate does not verify')
  return { cert, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string }
}

/** Write a new development certificate and key (the key readable by the owner only). */
export async function writeDevCertificate (certFile: string, keyFile: string, options?: DevCertificateOptions): Promise<void> {
  const { cert, key } = createDevCertificate(options)
  await mkdir(dirname(certFile), { recursive: true })
  await mkdir(dirname(keyFile), { recursive: true })
  await writeFile(keyFile, key, { mode: 0o600 })
  await writeFile(certFile, cert)
}
