// Error codes are the contract users match on: every code in errors.ts is
// documented in docs/errors.md and every documented code exists (as fastify's
// test/internals/errors.test.js does); aggregated errors name each listener.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { createPool, errors, type ListenerFailure } from 'fastify-pool'
import { COMMAND_CODES } from '../packages/fastify-pool-cli/src/codes.ts'
import { readdirSync } from 'node:fs'

const docs = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

type ErrorClass = new (...args: string[]) => Error & { code: string, statusCode?: number }

/** Every error class errors.ts exports, by code. */
function exportedCodes (): Map<string, ErrorClass> {
  const out = new Map<string, ErrorClass>()
  for (const [name, value] of Object.entries(errors)) {
    if (typeof value !== 'function' || !name.startsWith('FST_')) continue
    const instance = new (value as ErrorClass)('a', 'b')
    assert.equal(instance.code, name, `the export ${name} makes errors with code ${name}`)
    out.set(name, value as ErrorClass)
  }
  return out
}

function documentedCodes (): string[] {
  return [...docs.matchAll(/^#{2,3} `?(FST_[A-Z0-9_]+)`?\s*$/gm)].map(m => m[1] as string)
}

test('every exported error code has a heading in docs/errors.md', () => {
  const documented = new Set(documentedCodes())
  const codes = exportedCodes()
  assert.ok(codes.size >= 7)
  for (const code of codes.keys()) assert.ok(documented.has(code), `${code} is not documented in docs/errors.md`)
})

test('every code documented in docs/errors.md exists, once', () => {
  const codes = exportedCodes()
  const documented = documentedCodes()
  for (const code of documented) assert.ok(codes.has(code) || Object.hasOwn(COMMAND_CODES, code), `docs/errors.md documents ${code}, which neither errors.ts nor the command's codes.ts has`)
  assert.equal(new Set(documented).size, documented.length, 'no code is documented twice')
})

test('the codes the issue names are all there', () => {
  const codes = exportedCodes()
  for (const code of ['FST_POOL_PARAM_EMPTY', 'FST_POOL_ADD', 'FST_POOL_VALIDATE', 'FST_POOL_START', 'FST_POOL_STOP', 'FST_POOL_RESTART', 'FST_POOL_MONITOR']) {
    assert.ok(codes.has(code), code)
  }
})

test('each documented code says when it is thrown and what to do', () => {
  const sections = docs.split(/^#{2,3} `?(?=FST_)/m).slice(1)
  for (const section of sections) {
    const code = section.slice(0, section.search(/[`\s]/))
    const body = section.slice(section.indexOf('\n'))
    assert.ok(body.trim().length > 80, `${code} has a real explanation`)
  }
})

test('errors are Fastify errors: code, statusCode, name, a message with the argument', () => {
  const err = new errors.FST_POOL_PARAM_EMPTY('key')
  assert.ok(err instanceof errors.FST_POOL_PARAM_EMPTY)
  assert.ok(err instanceof TypeError, 'argument errors are TypeErrors')
  assert.equal(err.code, 'FST_POOL_PARAM_EMPTY')
  assert.equal(err.name, 'FastifyError')
  assert.equal(err.statusCode, 500)
  assert.equal(err.message, 'Missing or empty parameter: key')
})

test('validation errors carry every issue with its path and message', () => {
  const err = errors.validationError([{ path: 'servers[0].listen', message: 'is bad' }, { path: 'servers[1].name', message: 'is required' }])
  assert.ok(err instanceof errors.FST_POOL_VALIDATE)
  assert.deepEqual(err.errors, [{ path: 'servers[0].listen', message: 'is bad' }, { path: 'servers[1].name', message: 'is required' }])
  assert.equal(err.message, 'Invalid pool configuration:\n  - servers[0].listen: is bad\n  - servers[1].name: is required')
})

/** Every entry of an aggregated error is exactly { name, bind, error }. */
function assertFailures (failures: ListenerFailure[], expected: Array<[string, string]>): void {
  assert.deepEqual(failures.map(f => [f.name, f.bind]).sort(), [...expected].sort())
  for (const f of failures) {
    assert.deepEqual(Object.keys(f).sort(), ['bind', 'error', 'name'])
    assert.ok(f.error instanceof Error)
    assert.notEqual((f.error as { code?: string }).code?.startsWith('FST_POOL_START'), true, 'the cause itself, not a wrapper')
  }
}

test('aggregated lifecycle errors carry errors: one { name, bind, error } per failed listener', async (t) => {
  const busy = createServer()
  await new Promise<void>(resolve => busy.listen(0, '127.0.0.1', resolve))
  t.after(() => busy.close())
  const port = (busy.address() as { port: number }).port
  let failReload = false

  const p = createPool({
    servers: [
      { name: 'taken', listen: `127.0.0.1:${port}` },
      { name: 'fine', listen: '127.0.0.1:0' },
      { name: 'closer', listen: '127.0.0.1:0', handler: 'closer' },
      { name: 'reloader', listen: '127.0.0.1:0', handler: 'reloader' }
    ],
    handlers: {
      default: async () => {},
      closer: async (app: FastifyInstance) => { app.addHook('onClose', async () => { throw new Error('close failed') }) },
      reloader: async () => { if (failReload) throw new Error('reload failed') }
    }
  })
  t.after(() => p.stop().catch(() => {}))

  const start = await p.start().then(() => assert.fail('start should fail'), (err: unknown) => err as Error & { errors: ListenerFailure[] })
  assert.ok(start instanceof errors.FST_POOL_START)
  assertFailures(start.errors, [['taken', `127.0.0.1:${port}`]])
  assert.equal((start.errors[0]?.error as NodeJS.ErrnoException).code, 'EADDRINUSE')

  p.delete('taken')
  await p.start()
  failReload = true
  const restart = await p.restart().then(() => assert.fail('restart should fail'), (err: unknown) => err as Error & { errors: ListenerFailure[] })
  assert.ok(restart instanceof errors.FST_POOL_RESTART)
  assertFailures(restart.errors, [['reloader', '127.0.0.1:0']])
  assert.equal(restart.errors[0]?.error.message, 'reload failed')

  const stop = await p.stop().then(() => assert.fail('stop should fail'), (err: unknown) => err as Error & { errors: ListenerFailure[] })
  assert.ok(stop instanceof errors.FST_POOL_STOP)
  assertFailures(stop.errors, [['closer', '127.0.0.1:0']])
  assert.equal(stop.errors[0]?.error.message, 'close failed')
})

test('listenerFailures: the message names every listener; a single failure is also the cause', () => {
  const a = new Error('boom a')
  const b = new Error('boom b')
  const one = errors.listenerFailures(errors.FST_POOL_STOP, [{ name: 'a', bind: ':1', error: a }])
  assert.equal(one.message, 'Failed to stop: a (:1): boom a')
  assert.equal(one.cause, a)
  const two = errors.listenerFailures(errors.FST_POOL_START, [{ name: 'a', bind: ':1', error: a }, { name: 'b', bind: ':2', error: b }])
  assert.equal(two.message, 'Failed to start: a (:1): boom a; b (:2): boom b')
  assert.equal(two.cause, undefined)
  assert.equal(two.errors.length, 2)
})

test('every code the command gives is in its table (codes.ts) or the library\'s, and documented', () => {
  const documented = new Set(documentedCodes())
  for (const code of Object.keys(COMMAND_CODES)) assert.ok(documented.has(code), `${code} is not documented in docs/errors.md`)
  const library = exportedCodes()
  const dir = new URL('../packages/fastify-pool-cli/src/', import.meta.url)
  for (const file of readdirSync(dir)) {
    const text = readFileSync(new URL(file, dir), 'utf8')
    for (const [, code] of text.matchAll(/'(FST_POOL_[A-Z0-9_]+)'/g)) {
      assert.ok(library.has(code as string) || Object.hasOwn(COMMAND_CODES, code as string), `${file} gives ${code}, which no table has`)
    }
  }
})
