// Writes schema/pool.schema.json from the library's TypeBox schema.
// Run with `pnpm --filter fastify-pool-cli schema`; a test fails when the committed file is stale.
import { writeFileSync } from 'node:fs'
import { poolJsonSchemaText } from '../src/json-schema.ts'

const file = new URL('../schema/pool.schema.json', import.meta.url)
writeFileSync(file, poolJsonSchemaText())
process.stdout.write(`wrote ${file.pathname}\n`)
