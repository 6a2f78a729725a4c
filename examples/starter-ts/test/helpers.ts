// What the tests share: the pool built from pool.yaml, as `npm start` builds
// it, with a throwaway certificate for the secure listener and every listener
// on a port the system picks (pool.yaml reads these variables).
import type { TestContext } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Pool } from 'fastify-pool'
import { createPoolFromFile, writeDevCertificate } from 'fastify-pool-cli'

const POOL = new URL('../pool.yaml', import.meta.url)

const certs = mkdtempSync(join(tmpdir(), 'starter-certs-'))
process.once('exit', () => rmSync(certs, { recursive: true, force: true }))

export const env: Record<string, string | undefined> = {
  ...process.env,
  TLS_CERT: join(certs, 'dev.crt'),
  TLS_KEY: join(certs, 'dev.key'),
  PUBLIC_LISTEN: '127.0.0.1:0',
  SECURE_LISTEN: '127.0.0.1:0',
  ADMIN_LISTEN: '127.0.0.1:0'
}
await writeDevCertificate(join(certs, 'dev.crt'), join(certs, 'dev.key'))

/** The certificate the secure listener serves, for a client to trust. */
export const certificate = join(certs, 'dev.crt')

/** A pool of its own for one test, stopped after it (not started: inject() needs no port). */
export async function pool (t: TestContext): Promise<Pool> {
  const { pool } = await createPoolFromFile(POOL, { env })
  t.after(() => pool.stop())
  return pool
}
