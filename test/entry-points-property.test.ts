// Property: every public entry point of the library, given arbitrary JSON
// values and wrong types where its arguments go, returns (or resolves), or
// refuses with a coded error: FST_POOL_* from the pool, or FST_ERR_* from
// Fastify for Fastify's own options. Never a stray TypeError from our code.
// Bounded runs; whatever a valid argument starts is stopped after each run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import Fastify from 'fastify'
import { createPool, fastifyPool, poolStatusRoute, resolvePoolOptions, validateConfig, type Pool } from 'fastify-pool'

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60)

// JSON values, and what JSON cannot carry but a caller can pass.
const wrong = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(undefined, null, () => {}, Symbol('x'), 10n, new Date(0), /x/, Number.NaN, -1, 1.5, '', [null], [undefined], { servers: null },
    // Strings no URL parser takes (found by this test: light-my-request threw a TypeError for them).
    '\\\\', 'http://[', { url: '\\\\' })
)

/** The value as a caller sees it in a failure message. */
const shown = (v: unknown): string => { try { return typeof v === 'function' ? 'a function' : String(JSON.stringify(v, (_k, x: unknown) => typeof x === 'bigint' ? `${x}n` : typeof x === 'symbol' ? String(x) : x)) } catch { return String(v) } }

/** Run `call`; a throw or a rejection must carry a coded error. */
async function coded (what: string, value: unknown, call: () => unknown): Promise<void> {
  try {
    await call()
  } catch (err) {
    const code = (err as { code?: unknown }).code
    assert.ok(typeof code === 'string' && /^FST_(POOL|ERR)_/.test(code), `${what} with ${shown(value)}: an uncoded error escaped: ${(err as Error).stack ?? String(err)}`)
  }
}

const valid = (): Pool => createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }] })

test('createPool(), resolvePoolOptions(), validateConfig() and the plugin refuse arbitrary options with a coded error', async () => {
  await fc.assert(fc.asyncProperty(wrong, fc.constantFrom('options', 'servers', 'defaults', 'handlers', 'factory', 'logger', 'baseDir', 'metrics', 'control', 'server'), async (value, where) => {
    const options = where === 'options' ? value : where === 'server' ? { servers: [value] } : { servers: [], [where]: value }
    await coded(`createPool(${where})`, value, () => createPool(options as never))
    await coded(`resolvePoolOptions(${where})`, value, () => resolvePoolOptions(options as never))
    await coded(`validateConfig(${where})`, value, () => validateConfig(options as never))
    await coded(`the plugin (${where})`, value, async () => {
      const app = Fastify()
      try {
        await app.register(fastifyPool, options as never)
        await app.ready()
      } finally {
        await app.close()
      }
    })
  }), { numRuns: RUNS })
})

test('a pool\'s methods refuse arbitrary arguments with a coded error', async () => {
  await fc.assert(fc.asyncProperty(wrong, wrong, async (a, b) => {
    const pool = valid()
    try {
      await coded('pool.reload()', a, () => pool.reload(a as never))
      await coded('pool.reload({ servers })', a, () => pool.reload({ servers: a } as never))
      await coded('pool.filter()', [a, b], () => pool.filter(a as never, b as never))
      await coded('pool.list()', [a, b], () => pool.list(a as never, b as never))
      await coded('pool.load()', a, () => pool.load(a as never))
      await coded('pool.inject()', [a, b], () => pool.inject(a as never, b as never))
      await coded('pool.inject(a, request)', b, () => pool.inject('a', b as never))
      await coded('pool.storeNew()', a, () => pool.storeNew(a as never))
      await coded('pool.handler()', a, () => pool.handler(a as never))
      await coded('pool.monitor()', [a, b], () => pool.monitor(a as never, b as never))
      await coded('pool.startMonitor()', a, () => pool.startMonitor(a as never))
      await coded('pool.restart()', a, () => pool.restart(a as never))
      await coded('pool.stop()', a, () => pool.stop(a as never))
      const listener = pool.load('a')
      if (listener !== undefined) {
        await coded('listener.restart()', a, () => listener.restart(a as never))
        await coded('listener.stop()', a, () => listener.stop(a as never))
        await coded('listener.reconfigure()', [a, b], () => listener.reconfigure(a as never, b as never))
        await coded('listener.setTls()', a, () => listener.setTls(a as never))
        await coded('listener.inject()', a, () => listener.inject(a as never))
      }
    } finally {
      pool.stopMonitor()
      await pool.stop({ timeout: 0 })
    }
  }), { numRuns: RUNS })
})

test('the status route refuses arbitrary options with a coded error', async () => {
  await fc.assert(fc.asyncProperty(wrong, fc.constantFrom('options', 'path', 'version', 'fresh', 'timeout', 'strict', 'pool'), async (value, where) => {
    const pool = valid()
    const options = where === 'options' ? value : { pool, [where]: value }
    await coded(`poolStatusRoute(${where})`, value, async () => {
      const app = Fastify()
      try {
        await app.register(poolStatusRoute, options as never)
        await app.ready()
      } finally {
        await app.close()
      }
    })
  }), { numRuns: RUNS })
})
