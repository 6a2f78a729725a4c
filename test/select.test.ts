// Selecting listeners: filter (glob or RegExp on name, bind or expose), list,
// walk and walkLimit; a filtered pool acts on its subset with real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { createPool, type Listener, type Pool } from 'fastify-pool'
import { get } from './fixtures/client.ts'

function pool (): Pool {
  return createPool({
    servers: [
      { name: 'public-1', listen: '127.0.0.1:8001', expose: 'https://api.example.com/v1/users' },
      { name: 'Public-2', listen: '[::1]:8002', expose: 'https://API.example.com/v2' },
      { name: 'admin', listen: '127.0.0.1:9000' },
      { name: 'metrics', listen: ':9100' },
      { name: 'socket', listen: 'unix:/tmp/fastify-pool-select.sock' },
      { name: 'zero', listen: '127.0.0.1:0' }
    ]
  })
}

const names = (p: Pool): string[] => [...p].map(l => l.name)

test('filter by name: case-insensitive glob', () => {
  const p = pool()
  assert.deepEqual(names(p.filter('name', 'public-*')), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('name', 'PUBLIC-?')), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('name', 'public-[2-9]')), ['Public-2'])
  assert.deepEqual(names(p.filter('name', '{admin,metrics}')), ['admin', 'metrics'])
  assert.deepEqual(names(p.filter('name', 'admin')), ['admin'], 'a plain string is an exact (case-insensitive) match')
  assert.deepEqual(names(p.filter('name', 'adm')), [], 'not a substring match')
  assert.deepEqual(names(p.filter('name', '*')), names(p))
})

test('filter by bind: globs, exact IPv6 binds, unix paths', () => {
  const p = pool()
  assert.deepEqual(names(p.filter('bind', '127.0.0.1:*')), ['public-1', 'admin', 'zero'])
  assert.deepEqual(names(p.filter('bind', '*:9*')), ['admin', 'metrics'])
  assert.deepEqual(names(p.filter('bind', '[::1]:8002')), ['Public-2'], 'brackets of an IPv6 bind are not a character class')
  assert.deepEqual(names(p.filter('bind', '[::1]:*')), ['Public-2'])
  assert.deepEqual(names(p.filter('bind', ':9100')), ['metrics'])
  assert.deepEqual(names(p.filter('bind', 'unix:*')), ['socket'], '* crosses the / of a socket path')
  assert.deepEqual(names(p.filter('bind', '*:0')), ['zero'])
})

test('filter by expose: * crosses / in URLs, case-insensitive', () => {
  const p = pool()
  assert.deepEqual(names(p.filter('expose', 'https://api.example.com/*')), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('expose', '*example.com*')), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('expose', '*/v1/*')), ['public-1'])
  assert.deepEqual(names(p.filter('expose', 'http://127.0.0.1:*')), ['admin'])
  assert.deepEqual(names(p.filter('expose', 'http://localhost:9100')), ['metrics'], ':port is exposed on localhost')
  // A unix socket and a port-0 listener that is not running have no expose: they never match.
  assert.deepEqual(names(p.filter('expose', '*')), ['public-1', 'Public-2', 'admin', 'metrics'])
})

test('filter with a RegExp, including g and y flags (no lastIndex carried between listeners)', () => {
  const p = pool()
  assert.deepEqual(names(p.filter('name', /^public-\d$/i)), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('name', /^public-\d$/)), ['public-1'], 'a RegExp is used as given: case-sensitive here')
  assert.deepEqual(names(p.filter('bind', /:9\d+$/)), ['admin', 'metrics'])
  const global = /public/gi
  assert.deepEqual(names(p.filter('name', global)), ['public-1', 'Public-2'])
  assert.deepEqual(names(p.filter('name', global)), ['public-1', 'Public-2'], 'same answer the second time')
  assert.equal(global.lastIndex, 0, 'the caller\'s RegExp is not touched')
  assert.deepEqual(names(p.filter('name', /i/gy)), names(p.filter('name', /i/)), 'sticky is dropped too: a search, not a match at lastIndex')
  assert.deepEqual(names(p.filter('expose', /v\d/g)), ['public-1', 'Public-2'])
})

test('filters chain and share the listener objects', () => {
  const p = pool()
  const sub = p.filter('name', 'public-*').filter('bind', '127.*')
  assert.deepEqual(names(sub), ['public-1'])
  assert.equal(sub.load('public-1'), p.load('public-1'), 'the same Listener object')
  assert.equal(p.filter('name', 'nothing*').size, 0)
  // Removing from a filtered pool leaves the original alone.
  sub.delete('public-1')
  assert.equal(sub.size, 0)
  assert.equal(p.size, 6)
})

test('invalid field or match is refused with a clear error', () => {
  const p = pool()
  assert.throws(() => p.filter('port' as never, '*'), { code: 'FST_POOL_INVALID_ARGUMENT', message: /field must be one of "name", "bind", "expose", got "port"/ })
  assert.throws(() => p.filter('name', 42 as never), { code: 'FST_POOL_INVALID_ARGUMENT', message: /match must be a glob string or a RegExp, got number/ })
  assert.throws(() => p.filter('name', undefined as never), { code: 'FST_POOL_INVALID_ARGUMENT' })
  assert.throws(() => p.filter('name', ''), { code: 'FST_POOL_PARAM_EMPTY', message: /match/ })
  assert.throws(() => p.list('name', 'url' as never), { code: 'FST_POOL_INVALID_ARGUMENT', message: /returnField must be one of/ })
  assert.throws(() => p.list('host' as never, 'name'), { code: 'FST_POOL_INVALID_ARGUMENT', message: /field must be one of/ })
})

test('list returns one field of the matching listeners', () => {
  const p = pool()
  assert.deepEqual(p.list('name', 'bind', 'public-*'), ['127.0.0.1:8001', '[::1]:8002'])
  assert.deepEqual(p.list('bind', 'name', /^127\./), ['public-1', 'admin', 'zero'])
  assert.deepEqual(p.list('name', 'expose', 'admin'), ['http://127.0.0.1:9000'])
  assert.deepEqual(p.list('name', 'name'), names(p), 'no match: every listener')
  assert.deepEqual(p.list('name', 'expose', 'zero'), [], 'listeners with no value for the returned field are left out')
  assert.deepEqual(p.list('name', 'bind', 'none'), [])
})

test('walk visits every listener until the callback returns false', () => {
  const p = pool()
  const seen: Array<[string, string]> = []
  p.walk((l, bind) => { seen.push([l.name, bind]) })
  assert.deepEqual(seen.map(s => s[0]), names(p))
  assert.deepEqual(seen.map(s => s[1]), p.list('name', 'bind'), 'the bind is passed as the key')

  const stopped: string[] = []
  p.walk(l => { stopped.push(l.name); return stopped.length < 2 })
  assert.deepEqual(stopped, ['public-1', 'Public-2'])

  // Deleting while walking is safe: walk goes over a snapshot.
  const visited: string[] = []
  p.walk(l => { visited.push(l.name); p.delete(l.name) })
  assert.equal(visited.length, 6)
  assert.equal(p.size, 0)
})

test('walkLimit visits the listeners the keys name, in key order, ignoring unknown keys', () => {
  const p = pool()
  const visit = (...keys: string[]): string[] => {
    const out: string[] = []
    p.walkLimit(l => { out.push(l.name) }, ...keys)
    return out
  }
  assert.deepEqual(visit('127.0.0.1:9000', 'public-1'), ['admin', 'public-1'], 'by bind and by name')
  assert.deepEqual(visit('nope', '[::1]:8002', '1.2.3.4:5'), ['Public-2'], 'unknown keys are skipped')
  assert.deepEqual(visit('admin', '127.0.0.1:9000'), ['admin'], 'a listener named twice is visited once')
  assert.deepEqual(visit('9100'), ['metrics'], 'any spelling of a bind')
  assert.deepEqual(visit(), names(p), 'no keys: every listener')

  const stopped: string[] = []
  p.walkLimit(l => { stopped.push(l.name); return false }, 'admin', 'metrics')
  assert.deepEqual(stopped, ['admin'])
  const all: string[] = []
  p.walkLimit(l => { all.push(l.name); return all.length < 3 })
  assert.equal(all.length, 3, 'walkLimit with no keys also stops on false')
})

test('a filtered pool acts on its subset only: restart changes only their generation (real sockets)', async (t) => {
  const p = createPool({
    servers: [
      { name: 'public-a', listen: '127.0.0.1:0' },
      { name: 'public-b', listen: '127.0.0.1:0' },
      { name: 'admin', listen: '127.0.0.1:0' }
    ],
    handlers: async (app: FastifyInstance) => { app.get('/', async () => 'hi') }
  })
  t.after(() => p.stop())
  await p.start()
  const generation = (l: Listener | undefined): number => l?.status.generation ?? -1
  assert.deepEqual([...p].map(generation), [1, 1, 1])
  const ports = [...p].map(l => (l.address as { port: number }).port)

  await p.filter('name', 'public-*').restart()
  assert.deepEqual([...p].map(l => [l.name, generation(l)]), [['public-a', 2], ['public-b', 2], ['admin', 1]])
  assert.deepEqual([...p].map(l => (l.address as { port: number }).port), ports, 'restart keeps each socket')
  for (const l of p) assert.equal((await get(`${l.url}/`)).body, 'hi')

  await p.filter('name', 'admin').stop()
  assert.deepEqual([...p].map(l => l.isRunning), [true, true, false])
  assert.equal(p.isRunning(), true)
  await p.filter('bind', '*').filter('name', 'public-a').stop()
  assert.deepEqual([...p].map(l => l.isRunning), [false, true, false])
})

test('handler() on a filtered pool changes only the subset', async (t) => {
  const p = createPool({
    servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }],
    handlers: async (app: FastifyInstance) => { app.get('/', async () => 'old') }
  })
  t.after(() => p.stop())
  p.filter('name', 'a').handler(async (app: FastifyInstance) => { app.get('/', async () => 'new') })
  await p.start()
  assert.equal((await get(`${p.load('a')?.url}/`)).body, 'new')
  assert.equal((await get(`${p.load('b')?.url}/`)).body, 'old')
  const c = p.storeNew({ name: 'c', listen: '127.0.0.1:0' })
  await c.start()
  assert.equal((await get(`${c.url}/`)).body, 'old', 'the parent pool keeps its handlers for new listeners')
})
