// Every default is written once, in the schemas (packages/fastify-pool/src/config/schema.ts): what
// validateConfig() applies, what the shipped JSON Schema says, and what
// docs/config.md's tables say must be that value.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BUILTIN_DEFAULTS, validateConfig } from 'fastify-pool'
import { HealthSchema, ListenerConfigSchema, PoolDefaultsSchema } from 'fastify-pool/config'
import { ROOT } from './fixtures/cli.ts'

const DOC = readFileSync(join(ROOT, 'docs/config.md'), 'utf8')

/** The "default" cell of the table row of `field` in the section that starts with `heading`. */
function documented (heading: string, field: string): string {
  const section = DOC.slice(DOC.indexOf(heading))
  const row = section.split('\n').find(l => l.startsWith(`| \`${field}\` |`))
  assert.ok(row !== undefined, `docs/config.md (${heading}) has a row for ${field}`)
  return (row.split(' | ')[2] ?? '').trim()
}

function defaultsOf (schema: { properties: Record<string, unknown> }): Array<[string, unknown]> {
  return Object.entries(schema.properties).flatMap(([k, v]) => {
    const d = (v as { default?: unknown }).default
    return d === undefined ? [] : [[k, d] as [string, unknown]]
  })
}

test('each listener field with a default: the schema, validateConfig() and docs/config.md agree', () => {
  const [config] = validateConfig({ servers: [{ name: 'a', listen: 0 }] })
  const seen = defaultsOf(ListenerConfigSchema)
  assert.ok(seen.length >= 12, `${seen.length} defaults`)
  for (const [field, value] of seen) {
    assert.equal((config as unknown as Record<string, unknown>)[field], value, `validateConfig() applies ${field}`)
    assert.ok(documented('## Listener fields', field).startsWith(`\`${JSON.stringify(value)}\``), `docs/config.md gives ${field} the default ${JSON.stringify(value)}`)
  }
  // The health routes: the object's own defaults.
  for (const [route, value] of defaultsOf(HealthSchema)) {
    assert.equal(config?.health[route as 'liveness' | 'readiness'], value)
    assert.match(documented('## Listener fields', 'health'), new RegExp(`\`${String(value)}\``))
  }
})

test('the pool\'s own defaults (stopTimeout, shutdownDelay): the schema, BUILTIN_DEFAULTS and docs/config.md agree', () => {
  for (const [field, value] of defaultsOf(PoolDefaultsSchema)) {
    assert.equal(BUILTIN_DEFAULTS[field as keyof typeof BUILTIN_DEFAULTS], value, `BUILTIN_DEFAULTS.${field}`)
    const heading = field in ListenerConfigSchema.properties ? '## Listener fields' : '## Defaults and how they merge'
    assert.ok(documented(heading, field).startsWith(`\`${JSON.stringify(value)}\``), `docs/config.md gives ${field} the default ${JSON.stringify(value)}`)
    // The description says it too (the JSON Schema an editor shows).
    const description = (PoolDefaultsSchema.properties[field as keyof typeof PoolDefaultsSchema.properties] as { description?: string }).description ?? ''
    if (field !== 'tls' && field !== 'health' && field !== 'logLevel') assert.match(description, new RegExp(`\\(default ${String(value)}\\)`), field)
  }
})
