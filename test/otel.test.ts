// OpenTelemetry with @fastify/otel (docs/opentelemetry.md): every listener's
// requests get spans that say which listener, generation and worker served
// them (`fastify-pool/otel`'s requestHook), with the real SDK pieces, real
// sockets and real requests; and instrumenting keeps no retired generation
// alive.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { createPool, type Handlers, type ListenerConfig, type Pool, type PoolOptions } from 'fastify-pool'
import { ATTR_GENERATION, ATTR_LISTENER, ATTR_WORKER, poolAttributes, poolRequestHook } from 'fastify-pool/otel'
import { BIN, freePort, get, logLines, run, tempDir } from './fixtures/cli.ts'
import { deferred, keepAliveAgent, send } from './fixtures/lifecycle.ts'

// As the SDK would set it up: every Fastify instance made from now on is
// instrumented (registerOnInitialization), the pool's listeners included.
const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const otel = new FastifyOtelInstrumentation({ registerOnInitialization: true, requestHook: poolRequestHook })
otel.setTracerProvider(provider)

const routes: Handlers = async (app) => {
  app.get('/', async () => 'ok')
  // Two plugins deep: the route's instance is two Object.create() away from the listener's.
  app.register(async (inner) => {
    inner.register(async (deeper) => { deeper.get('/deep', async () => 'deep') })
  }, { prefix: '/nested' })
}

function makePool (t: TestContext, servers: ListenerConfig[], options: Partial<PoolOptions> = {}): Pool {
  const pool = createPool({ servers, handlers: routes, ...options })
  t.after(() => pool.stop({ timeout: 0 }))
  return pool
}

/** The request spans @fastify/otel ended for `path` since the last reset, oldest first. */
async function requestSpans (path: string): Promise<ReadableSpan[]> {
  await provider.forceFlush()
  return exporter.getFinishedSpans().filter(s => s.name === 'request' && s.attributes['url.path'] === path)
}

/** The pool attributes of a span, and nothing else of it. */
function poolOf (span: ReadableSpan | undefined): Record<string, unknown> {
  assert.ok(span !== undefined, 'a request span')
  return Object.fromEntries(Object.entries(span.attributes).filter(([k]) => k.startsWith('fastify_pool.')))
}

test('a request to each of two listeners yields a span that names its listener and generation, and no worker outside one', async (t) => {
  exporter.reset()
  const pool = makePool(t, [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }])
  await pool.start()
  for (const name of ['public', 'admin']) {
    const reply = await send(`${pool.load(name)?.url}/nested/deep`, { agent: false })
    assert.equal(reply.body, 'deep')
  }
  const spans = await requestSpans('/nested/deep')
  assert.equal(spans.length, 2, 'one request span per request')
  assert.deepEqual(spans.map(poolOf), [
    { [ATTR_LISTENER]: 'public', [ATTR_GENERATION]: 1 },
    { [ATTR_LISTENER]: 'admin', [ATTR_GENERATION]: 1 }
  ])
  assert.equal(spans[0]?.attributes[ATTR_WORKER], undefined, 'not in a cluster worker: no worker attribute')
  assert.equal(spans[0]?.attributes['http.route'], '/nested/deep', "@fastify/otel's own attributes are kept")
})

test('across restarts the generation attribute follows the instance that served the request', async (t) => {
  exporter.reset()
  const release = deferred()
  const arrived = deferred()
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0' }], {
    handlers: async (app) => {
      app.get('/', async () => 'ok')
      app.get('/held', async () => { arrived.resolve(); await release.promise; return 'held' })
    }
  })
  await pool.start()
  const url = pool.load('a')?.url as string
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())
  await send(`${url}/`, { agent })
  // A request in flight across the swap: the old generation serves it, after the new one took over.
  const held = send(`${url}/held`, { agent: false })
  await arrived.promise
  const [report] = await pool.restart()
  assert.equal(report?.generation, 2)
  // The same keep-alive connection: now served by the new generation.
  await send(`${url}/`, { agent })
  release.resolve()
  assert.equal((await held).body, 'held')
  await report?.retired
  const [again] = await pool.restart()
  await send(`${url}/`, { agent })
  await again?.retired
  assert.deepEqual((await requestSpans('/')).map(s => poolOf(s)[ATTR_GENERATION]), [1, 2, 3])
  assert.deepEqual((await requestSpans('/held')).map(s => poolOf(s)[ATTR_GENERATION]), [1], 'the old generation served the request held across the swap')
  assert.equal(pool.load('a')?.status.generation, 3)
})

test('a factory that registers the plugin itself instruments only the listeners it chooses', async (t) => {
  exporter.reset()
  // Instead of every instance of the process: the docs' factory recipe.
  otel.disable()
  t.after(() => otel.enable())
  const chosen = new FastifyOtelInstrumentation({ requestHook: poolRequestHook })
  chosen.setTracerProvider(provider)
  const pool = makePool(t, [{ name: 'public', listen: '127.0.0.1:0' }, { name: 'admin', listen: '127.0.0.1:0' }], {
    factory: async (config, options) => {
      const app = Fastify(options)
      if (config.name !== 'admin') await app.register(chosen.plugin())
      return app
    }
  })
  await pool.start()
  for (const name of ['public', 'admin']) await send(`${pool.load(name)?.url}/`, { agent: false })
  await pool.restart()
  await send(`${pool.load('public')?.url}/`, { agent: false })
  assert.deepEqual((await requestSpans('/')).map(poolOf), [
    { [ATTR_LISTENER]: 'public', [ATTR_GENERATION]: 1 },
    { [ATTR_LISTENER]: 'public', [ATTR_GENERATION]: 2 }
  ])
})

test('an instance no pool started gets no pool attributes', async (t) => {
  exporter.reset()
  const app = Fastify()
  t.after(() => app.close())
  app.get('/', async (request) => ({ attributes: poolAttributes(request) ?? null }))
  const reply = await app.inject('/')
  assert.deepEqual(reply.json(), { attributes: null })
  const [span] = await requestSpans('/')
  assert.ok(span !== undefined, 'the app is instrumented all the same')
  assert.deepEqual(poolOf(span), {})
})

test('restarts of an instrumented listener retain no retired Fastify instance', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const RESTARTS = 12
  let collected = 0
  const registry = new FinalizationRegistry<number>(() => { collected++ })
  const pool = makePool(t, [{ name: 'a', listen: '127.0.0.1:0' }], {
    factory: (_config, options) => {
      const app: FastifyInstance = Fastify(options)
      registry.register(app, 0)
      return app
    }
  })
  await pool.start()
  const url = pool.load('a')?.url as string
  const agent = keepAliveAgent()
  t.after(() => agent.destroy())
  for (let i = 0; i < RESTARTS; i++) {
    exporter.reset()
    await send(`${url}/nested/deep`, { agent })
    // Each generation served a request and got its span attributes.
    assert.equal(poolOf((await requestSpans('/nested/deep'))[0])[ATTR_GENERATION], i + 1)
    const [report] = await pool.restart()
    await report?.retired
  }
  exporter.reset()
  // Finalizers run in tasks after a collection: collect, let them run, again, until all retired ones are counted.
  for (let round = 0; round < 20; round++) {
    if (collected === RESTARTS) break
    gc()
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.equal(collected, RESTARTS, `${collected} of ${RESTARTS} retired generations were collected`)
})

// The recipe of docs/opentelemetry.md for the command: the SDK started by
// `node --import ./otel-setup.js` before anything loads, a JavaScript pool
// file, two workers. The fixture prints each span on stderr at export.
test('the command with --import of the SDK setup and two workers: spans name the listener and the worker, and are flushed at the stop', async (t) => {
  const dir = tempDir(t, 'fastify-pool-otel-')
  const port = await freePort()
  writeFileSync(join(dir, 'pool.mjs'), `export default {
  workers: 2,
  servers: [{ name: 'web', listen: '127.0.0.1:${port}' }],
  handlers: { default: async (app) => { app.get('/', async () => 'ok') } }
}
`)
  const setup = fileURLToPath(new URL('./fixtures/otel-setup.ts', import.meta.url))
  // From the pool file's folder, outside the workspace: tsx by its path (it runs the TypeScript fixture and the library's sources).
  const child = run(t, ['--conditions=source', '--import', import.meta.resolve('tsx'), '--import', setup, BIN, 'start', '--json', 'pool.mjs'], { cwd: dir })
  await child.waitFor(out => out.includes('"msg":"pool started in 2 workers"'), 30_000)
  assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'ok')
  // The fixture's batch processor holds spans for a minute: they come out at the stop, when the listener's instance closes.
  child.proc.kill('SIGTERM')
  const { code } = await child.exited
  assert.equal(code, 0, child.stderr())
  const spans = child.stderr().split('\n').filter(l => l.startsWith('{"span"')).map(l => JSON.parse(l) as { span: string, attributes: Record<string, unknown> })
  const request = spans.find(s => s.span === 'request' && s.attributes['url.path'] === '/')
  assert.ok(request !== undefined, `a request span was exported before the exit:\n${child.stderr()}`)
  assert.equal(request.attributes[ATTR_LISTENER], 'web')
  assert.equal(request.attributes[ATTR_GENERATION], 1)
  const workers = logLines(child.stdout()).find(l => l.msg === 'pool started in 2 workers')?.workers as Array<{ id: number }>
  assert.ok(workers.map(w => w.id).includes(request.attributes[ATTR_WORKER] as number), `the id of one of the workers (${JSON.stringify(workers)}): ${String(request.attributes[ATTR_WORKER])}`)
})
