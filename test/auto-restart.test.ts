// Health-driven restart on the periodic monitor: after `after` failed checks
// a new generation, backoff between attempts, and after `max` attempts a
// listener that stays failed and says so. Real sockets, real checks.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { createPool, type GenerationEvent } from 'fastify-pool'
import { memoryLogger, within } from './fixtures/lifecycle.ts'

/** Resolves at the next generation swap of the listener named `name`. */
function nextGeneration (name: string): Promise<GenerationEvent> {
  return new Promise(resolve => {
    const on = (message: unknown): void => {
      const event = message as GenerationEvent
      if (event.name !== name) return
      unsubscribe('fastify-pool:listener:generation', on)
      resolve(event)
    }
    subscribe('fastify-pool:listener:generation', on)
  })
}

test('a listener whose readiness starts failing is restarted after 3 failed checks, then given up on after max attempts', async (t) => {
  let sick = false
  const checks: boolean[] = []
  const { logger, lines } = memoryLogger('info')
  const pool = createPool({
    logger,
    servers: [{ name: 'a', listen: '127.0.0.1:0', health: false }, { name: 'b', listen: '127.0.0.1:0', handler: 'other' }],
    handlers: {
      // With no health routes, a check asks for / and fails on a 5xx.
      default: async (app: FastifyInstance) => {
        app.get('/', async (_request, reply) => {
          checks.push(!sick)
          return sick ? reply.code(503).send({ status: 'sick' }) : { status: 'ready' }
        })
      },
      other: async () => {}
    }
  })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  await pool.startMonitor({ interval: 25, timeout: 1000, fall: 1, autoRestart: { after: 3, backoff: { min: 50, max: 100 }, max: 2, window: 60_000 } })
  const [a0] = await pool.monitor()
  assert.deepEqual(a0?.autoRestart, { attempts: 0, gaveUp: false, nextAttemptAt: undefined })

  const first = nextGeneration('a')
  sick = true
  const swap = await within(10_000, first, 'the first auto-restart')
  assert.equal(swap.generation, 2)
  const failedBefore = checks.lastIndexOf(true)
  assert.ok(checks.length - failedBefore - 1 >= 3, `restarted after ${checks.length - failedBefore - 1} failed checks`)
  const second = await within(10_000, nextGeneration('a'), 'the second auto-restart (after the backoff)')
  assert.equal(second.generation, 3)

  // Two attempts within the window: the third is not made.
  const deadline = Date.now() + 10_000
  while (!lines.some(l => /auto-restart gave up/.test(l.msg)) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 25))
  const gaveUp = lines.find(l => /auto-restart gave up/.test(l.msg))
  assert.ok(gaveUp !== undefined, 'the log says it gave up')
  assert.equal(gaveUp.listener, 'a')
  const [report] = await pool.monitor()
  assert.equal(report?.autoRestart?.gaveUp, true)
  assert.equal(report?.autoRestart?.attempts, 2)
  assert.equal(report?.status, 'ko')
  assert.equal(pool.load('a')?.status.generation, 3, 'no further restart')
  assert.equal(pool.load('b')?.status.generation, 1, 'the healthy listener is left alone')

  // Healthy again: it passes, and auto-restart is armed again.
  sick = false
  const back = Date.now() + 10_000
  let again = (await pool.monitor())[0]
  while (again?.autoRestart?.gaveUp === true && Date.now() < back) {
    await new Promise(resolve => setTimeout(resolve, 25))
    again = (await pool.monitor())[0]
  }
  assert.equal(again?.autoRestart?.gaveUp, false)
})

test('a listener stopped on purpose is not restarted; monitor() alone restarts nothing', async (t) => {
  const pool = createPool({ servers: [{ name: 'a', listen: '127.0.0.1:0' }, { name: 'b', listen: '127.0.0.1:0' }] })
  t.after(() => pool.stop({ timeout: 0 }))
  await pool.start()
  await pool.load('b')?.stop()
  await pool.startMonitor({ interval: 20, fall: 1, autoRestart: { after: 1, backoff: { min: 0, max: 0 } } })
  for (let i = 0; i < 5; i++) await pool.monitor({ fresh: true })
  await new Promise(resolve => setTimeout(resolve, 200))
  assert.equal(pool.load('b')?.state, 'stopped')
  assert.equal(pool.load('b')?.status.generation, 0)
  await assert.rejects(pool.startMonitor({ autoRestart: { after: 0, colour: 1 } as never }), (err: Error & { errors: Array<{ path: string }> }) => {
    assert.deepEqual(err.errors.map(e => e.path).sort(), ['options.autoRestart.after', 'options.autoRestart.colour'])
    return true
  })
})
