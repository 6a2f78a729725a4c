// Listen addresses: every accepted form, every refusal with its message, the
// canonical bind text, and which binds clash.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatAddress, parseListen, type ListenAddress } from 'fastify-pool'
import { bindsOverlap } from '../packages/fastify-pool/src/config/address.ts'

function ok (value: unknown, baseDir = '/srv/app'): ListenAddress {
  const r = parseListen(value, baseDir)
  if (!r.ok) assert.fail(`${JSON.stringify(value)} was refused: ${r.message}`)
  return r.address
}

function refused (value: unknown): string {
  const r = parseListen(value, '/srv/app')
  if (r.ok) assert.fail(`${JSON.stringify(value)} was accepted as ${JSON.stringify(r.address)}`)
  return r.message
}

const tcp = (host: string | undefined, port: number): ListenAddress => ({ kind: 'tcp', host, port })

test('host:port keeps the host', () => {
  assert.deepEqual(ok('127.0.0.1:8080'), tcp('127.0.0.1', 8080))
  assert.deepEqual(ok('0.0.0.0:80'), tcp('0.0.0.0', 80))
  assert.deepEqual(ok('  10.1.2.3:443  '), tcp('10.1.2.3', 443), 'surrounding spaces are trimmed')
})

test(':port and a bare port number bind every interface', () => {
  assert.deepEqual(ok(':8080'), tcp(undefined, 8080))
  assert.deepEqual(ok(8080), tcp(undefined, 8080))
  assert.deepEqual(ok('8080'), tcp(undefined, 8080))
  assert.deepEqual(ok(0), tcp(undefined, 0))
})

test('port 0 is accepted in every form', () => {
  assert.deepEqual(ok('127.0.0.1:0'), tcp('127.0.0.1', 0))
  assert.deepEqual(ok(':0'), tcp(undefined, 0))
  assert.deepEqual(ok('[::1]:0'), tcp('::1', 0))
  assert.deepEqual(ok('localhost:0'), tcp('localhost', 0))
  assert.deepEqual(ok('65535'), tcp(undefined, 65535))
})

test('IPv6 literals in brackets, written canonically', () => {
  assert.deepEqual(ok('[::1]:8080'), tcp('::1', 8080))
  assert.deepEqual(ok('[::]:80'), tcp('::', 80))
  assert.deepEqual(ok('[2001:DB8::0:1]:443'), tcp('2001:db8::1', 443), 'lower case, zeros compressed')
  assert.deepEqual(ok('[0:0:0:0:0:0:0:1]:80'), tcp('::1', 80))
  assert.deepEqual(ok('[::ffff:127.0.0.1]:80'), tcp('::ffff:127.0.0.1', 80), 'IPv4-mapped')
})

test('IPv6 zone ids are kept as written (Node listens on them)', () => {
  assert.deepEqual(ok('[fe80::1%eth0]:8080'), tcp('fe80::1%eth0', 8080))
  assert.deepEqual(ok('[FE80::0:1%Eth0]:8080'), tcp('fe80::1%Eth0', 8080), 'the address is canonical, the interface name is not touched')
  assert.deepEqual(ok('[::1%lo]:0'), tcp('::1%lo', 0))
})

test('hostnames are kept (lower case), not resolved', () => {
  assert.deepEqual(ok('localhost:8080'), tcp('localhost', 8080))
  assert.deepEqual(ok('api.example.com:80'), tcp('api.example.com', 80))
  assert.deepEqual(ok('API.Example.COM:80'), tcp('api.example.com', 80))
  assert.deepEqual(ok('my-host_1.internal:9000'), tcp('my-host_1.internal', 9000))
  assert.deepEqual(ok('example.com.:80'), tcp('example.com.', 80), 'a fully qualified name with its root dot')
})

test('unix sockets: absolute paths as given, relative ones against baseDir', () => {
  assert.deepEqual(ok('unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' })
  assert.deepEqual(ok('unix:app.sock', '/srv/app'), { kind: 'unix', path: '/srv/app/app.sock' })
  assert.deepEqual(ok('unix:./run/../app.sock', '/srv/app'), { kind: 'unix', path: '/srv/app/app.sock' })
})

test('refusals say what is wrong', () => {
  const cases: Array<[unknown, RegExp]> = [
    ['::1:8080', /IPv6 address without brackets; write "\[::1\]:8080"/],
    ['fe80::1', /IPv6 address without brackets; write "\[fe80::1\]:port"/],
    ['2001:db8::1:80', /IPv6 address without brackets/],
    ['[::1', /no closing "\]"/],
    ['[::1]', /no port after "\]"/],
    ['[::1]8080', /no port after "\]"/],
    ['[::1]:', /has no port/],
    ['[not-ipv6]:80', /"not-ipv6" is not an IPv6 address/],
    ['[127.0.0.1]:80', /"127.0.0.1" is not an IPv6 address/],
    ['localhost', /"localhost" has no port/],
    ['localhost:', /has no port/],
    [':', /has no port/],
    ['host:http', /port "http" is not a number from 0 to 65535/],
    ['host:-1', /port "-1" is not a number from 0 to 65535/],
    ['host:65536', /port 65536 is out of range \(0 to 65535\)/],
    ['99999', /port 99999 is out of range/],
    ['host:123456', /port "123456" is not a number/],
    [65536, /port 65536 is out of range/],
    [-1, /port "-1" is not a number/],
    [80.5, /port 80.5 is not an integer/],
    [Number.NaN, /port NaN is not an integer/],
    ['', /is empty/],
    ['   ', /is empty/],
    [undefined, /must be a string/],
    [null, /must be a string/],
    [{ port: 80 }, /must be a string/],
    ['a b:80', /"a b" is neither an IP address nor a valid hostname/],
    ['-bad.example:80', /neither an IP address nor a valid hostname/],
    ['bad-.example:80', /neither an IP address nor a valid hostname/],
    ['exa mple.com:80', /neither an IP address nor a valid hostname/],
    ['300.1.1.1:80', /"300.1.1.1" is not a valid IPv4 address/],
    ['1.2.3.4.5:80', /is not a valid IPv4 address/],
    ['127.1:80', /is not a valid IPv4 address/],
    ['http://localhost:8080', /is a URL; listen takes an address .*expose/],
    ['a:b:c', /"a:b:c" is not an address/],
    ['unix:', /unix socket path is empty/]
  ]
  for (const [value, message] of cases) {
    assert.match(refused(value), message, `message for ${JSON.stringify(value)}`)
  }
})

test('formatAddress gives the canonical bind, and parsing it gives the address back', () => {
  const forms: Array<[unknown, string]> = [
    ['127.0.0.1:8080', '127.0.0.1:8080'],
    [':8080', ':8080'],
    [8080, ':8080'],
    ['0', ':0'],
    ['[::1]:8080', '[::1]:8080'],
    ['[0:0::1]:8080', '[::1]:8080'],
    ['[fe80::1%eth0]:80', '[fe80::1%eth0]:80'],
    ['[::]:80', '[::]:80'],
    ['LocalHost:3000', 'localhost:3000'],
    ['api.example.com:80', 'api.example.com:80'],
    ['unix:/run/app.sock', 'unix:/run/app.sock'],
    ['unix:app.sock', 'unix:/srv/app/app.sock']
  ]
  for (const [input, bind] of forms) {
    const address = ok(input)
    assert.equal(formatAddress(address), bind, `bind of ${JSON.stringify(input)}`)
    assert.deepEqual(ok(formatAddress(address)), address, `round trip of ${bind}`)
  }
})

test('bindsOverlap: the binds that would fail with EADDRINUSE together', () => {
  const clash = (a: string, b: string): boolean => {
    const x = ok(a)
    const y = ok(b)
    assert.equal(bindsOverlap(x, y), bindsOverlap(y, x), `${a} vs ${b} is symmetric`)
    return bindsOverlap(x, y)
  }
  // Same address.
  assert.equal(clash('127.0.0.1:8080', '127.0.0.1:8080'), true)
  assert.equal(clash('[::1]:8080', '[0:0::1]:8080'), true, 'two spellings of one IPv6 address')
  assert.equal(clash('localhost:8080', 'LOCALHOST:8080'), true)
  // All interfaces clash with any host on the same port.
  assert.equal(clash(':8080', '127.0.0.1:8080'), true)
  assert.equal(clash(':8080', '[::1]:8080'), true)
  assert.equal(clash(':8080', 'localhost:8080'), true)
  assert.equal(clash('0.0.0.0:8080', '10.0.0.1:8080'), true)
  assert.equal(clash('0.0.0.0:8080', ':8080'), true)
  assert.equal(clash('[::]:8080', '127.0.0.1:8080'), true, ':: is dual stack')
  assert.equal(clash('[::]:8080', '0.0.0.0:8080'), true)
  // No clash.
  assert.equal(clash('0.0.0.0:8080', '[::1]:8080'), false, '0.0.0.0 is IPv4 only')
  assert.equal(clash('127.0.0.1:8080', '127.0.0.2:8080'), false)
  assert.equal(clash('127.0.0.1:8080', '127.0.0.1:8081'), false)
  assert.equal(clash(':8080', ':8081'), false)
  assert.equal(clash('127.0.0.1:8080', '[::1]:8080'), false)
  // Port 0 never clashes: the OS gives each its own port.
  assert.equal(clash('127.0.0.1:0', '127.0.0.1:0'), false)
  assert.equal(clash(':0', ':0'), false)
  assert.equal(clash(':0', '127.0.0.1:0'), false)
  // Unix sockets clash only on the same path, never with TCP.
  assert.equal(clash('unix:/run/a.sock', 'unix:/run/a.sock'), true)
  assert.equal(clash('unix:/srv/app/a.sock', 'unix:a.sock'), true, 'relative path resolved first')
  assert.equal(clash('unix:/run/a.sock', 'unix:/run/b.sock'), false)
  assert.equal(clash('unix:/run/a.sock', ':8080'), false)
})
