// What a web page could make a browser send to the control API, refused
// before the API acts. A control listener without a token trusts that only
// this machine reaches it; a browser on this machine breaks that trust in two
// ways, and each has its check:
// - Cross-site requests. A page may POST to any address without a CORS
//   preflight if the body is text/plain, a form or multipart; it cannot read
//   the answer, but the action is done. Refused: an Origin that is not
//   loopback, `Sec-Fetch-Site: cross-site`, and a POST with any content type
//   but application/json (which a page can send only after a preflight that
//   this API never grants).
// - DNS rebinding. A page's own host name re-pointed at 127.0.0.1 makes its
//   requests same-origin, with `Host: evil.example`. Refused: a Host that is
//   not a loopback name or address (as Node's inspector does since
//   CVE-2018-7160). A unix socket has no such exposure and no Host check.
// With a token none of this applies: a page cannot add an Authorization
// header without a preflight, and without it the request is refused anyway.
import type { FastifyRequest } from 'fastify'

/** A refusal: the status and the message of the answer. */
export interface Refusal { status: 403 | 415, message: string }

const LOOPBACK_NAME = /^(?:localhost|[a-z0-9-]+\.localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i

/** `host[:port]` (a Host header, or the authority of an Origin) without its port. */
function hostOf (authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    return end < 0 ? authority : authority.slice(0, end + 1)
  }
  const colon = authority.indexOf(':')
  return colon < 0 ? authority : authority.slice(0, colon)
}

export function isLoopbackHost (authority: string): boolean {
  return LOOPBACK_NAME.test(hostOf(authority.trim()))
}

function isLoopbackOrigin (origin: string): boolean {
  const m = /^https?:\/\/([^/]+)$/i.exec(origin.trim())
  return m !== null && isLoopbackHost(m[1] as string)
}

/** Why a request to a control API without a token must be refused, or undefined. */
export function browserRefusal (request: FastifyRequest): Refusal | undefined {
  const headers = request.headers
  // Over a unix socket Node has no remote address; no browser reaches one.
  const overUnixSocket = request.socket.remoteAddress === undefined
  if (!overUnixSocket) {
    const host = headers.host
    if (typeof host !== 'string' || !isLoopbackHost(host)) {
      return { status: 403, message: `this control API has no token, so it answers only requests addressed to a loopback host (localhost, 127.0.0.1, [::1]); this one was addressed to ${JSON.stringify(host ?? '')}` }
    }
  }
  const origin = headers.origin
  if (typeof origin === 'string' && !isLoopbackOrigin(origin)) {
    return { status: 403, message: 'this control API has no token, so it refuses requests from web pages of other sites (Origin header)' }
  }
  if (headers['sec-fetch-site'] === 'cross-site') {
    return { status: 403, message: 'this control API has no token, so it refuses requests from web pages of other sites (Sec-Fetch-Site: cross-site)' }
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    const type = headers['content-type']
    if (type !== undefined && !/^application\/json\s*(?:;|$)/i.test(type)) {
      return { status: 415, message: 'a control action takes no body, or a JSON one (Content-Type: application/json)' }
    }
  }
  return undefined
}
