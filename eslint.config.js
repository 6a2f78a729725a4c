import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['**/dist/**', '**/node_modules/**', '.node*/**'] }),
  {
    // A double cast hides what a value really is; the one place that reads
    // what Node does not promise is packages/fastify-pool/src/listener/node-internals.ts.
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/fastify-pool/src/listener/node-internals.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: 'TSAsExpression > TSAsExpression.expression[typeAnnotation.type="TSUnknownKeyword"]',
        message: 'No `as unknown as` outside node-internals.ts: narrow the value (a type guard) instead.'
      }]
    }
  }
]
