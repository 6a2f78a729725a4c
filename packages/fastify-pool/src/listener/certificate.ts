// The certificate a listener presents: what its status reports, and what the
// expiry warning compares with (it warns once per certificate). And the two
// ways TLS changes on a live socket besides a restart: setTls() (fields
// merged over the configuration's) and a reload that keeps the listener (its
// equal configuration's material, read again where a file was renewed).
import type { FastifyBaseLogger } from 'fastify'
import { serverTls, withTls, type NormalizedConfig } from '../config/config.ts'
import { FST_POOL_TLS } from '../base/errors.ts'
import { loadMerged, noteCertificate, type CertificateInfo, type ServerTlsOptions, type TlsConfig } from '../config/tls.ts'
import { clientCertificatesLive } from './node-internals.ts'
import type { ServerHandle } from './server.ts'

export class Certificate {
  #info: CertificateInfo | undefined

  /** What the listener presents now; undefined for plain HTTP or while it never served TLS. */
  get info (): CertificateInfo | undefined { return this.#info }

  /** The material now served: a start's, a restart's (`fresh` when its configuration is a new one), a change's. */
  served (tls: ServerTlsOptions | undefined, fresh: boolean, log: FastifyBaseLogger | undefined): void {
    this.#info = noteCertificate(tls, fresh ? undefined : this.#info, log)
  }

  /** setTls(): `tls` merged over `config`'s and read, in force at once on a live socket; returns the configuration holding it. */
  replace (config: NormalizedConfig, tls: TlsConfig, handle: ServerHandle | undefined, log: FastifyBaseLogger | undefined): NormalizedConfig {
    const { merged, options } = loadMerged(config.name, config.tls, tls, config.baseDir)
    if (handle !== undefined) {
      if (config.tls === undefined) throw new FST_POOL_TLS(config.name, 'it serves plain HTTP on a live socket; stop it, set TLS, then start it again')
      const refusal = clientCertificatesRefusal(config.tls, merged)
      if (refusal !== undefined) throw new FST_POOL_TLS(config.name, refusal)
      handle.applyTls(options)
      this.served(options, true, log)
    }
    log?.info('TLS settings replaced')
    return withTls(config, merged)
  }

  /** A reload that keeps the listener: the material `next` (equal to `running`) read, in force on the live socket. */
  renew (next: NormalizedConfig, running: NormalizedConfig, handle: ServerHandle | undefined, log: FastifyBaseLogger | undefined): void {
    const options = serverTls(next)
    if (options === undefined || handle === undefined || running.tls === undefined) return
    handle.applyTls(options)
    this.served(options, false, log)
  }
}

/**
 * Why a running listener cannot take `next`'s client-certificate settings:
 * only where Node does not let a live server change them (node-internals.ts,
 * `tlsServerOptions`) and they differ.
 */
export function clientCertificatesRefusal (current: TlsConfig | undefined, next: TlsConfig | undefined): string | undefined {
  if (clientCertificatesLive() || current === undefined || next === undefined) return undefined
  const same = (current.requestCert === true) === (next.requestCert === true) && (current.rejectUnauthorized !== false) === (next.rejectUnauthorized !== false)
  return same ? undefined : `Node ${process.version} does not let a live server change requestCert or rejectUnauthorized; stop and start the listener`
}
