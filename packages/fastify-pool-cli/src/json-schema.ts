// The JSON Schema of pool files, made from the library's TypeBox schema (the
// one source of truth) and shipped as schema/pool.schema.json for editors.
import { PoolFileSchema } from 'fastify-pool/config'

/** A `${VAR}` expression, accepted wherever a number or boolean is expected (it is converted after interpolation). */
// eslint-disable-next-line no-template-curly-in-string -- a ${VAR} expression, not a template
const EXPRESSION = { type: 'string', pattern: '^\\$\\{[^}]+\\}$', description: 'An environment variable: ${NAME} or ${NAME:-default}' }

type Node = Record<string, unknown>

function allowExpressions (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(allowExpressions)
  if (node === null || typeof node !== 'object') return node
  const out: Node = {}
  // `expected` is the library's own keyword (how a problem is worded), not JSON Schema's.
  for (const [k, v] of Object.entries(node)) if (k !== 'expected') out[k] = allowExpressions(v)
  const type = out.type
  if ((type === 'integer' || type === 'number' || type === 'boolean') && out.const === undefined) {
    const { description, ...rest } = out
    return { ...(description === undefined ? {} : { description }), anyOf: [rest, EXPRESSION] }
  }
  return out
}

export function poolJsonSchema (): Node {
  // JSON round trip: TypeBox keeps its own metadata under symbol keys.
  const plain = JSON.parse(JSON.stringify(PoolFileSchema)) as Node
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...(allowExpressions(plain) as Node)
  }
}

/** The file's text, as committed. */
export function poolJsonSchemaText (): string {
  return `${JSON.stringify(poolJsonSchema(), null, 2)}\n`
}
