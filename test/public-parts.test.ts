// Metrics, the control API, the monitor and the OpenTelemetry attributes are parts built on the pool's
// public API: read with the TypeScript checker, no file of theirs touches a
// member marked @internal (a listener's context, its launch, the pool's
// constructor...), and none subscribes to the library's own channels.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'

const src = join(import.meta.dirname, '..', 'packages', 'fastify-pool', 'src')
const parts = [...['observability', 'control'].flatMap(dir => readdirSync(join(src, dir)).map(f => join(src, dir, f))), ...['metrics.ts', 'control.ts', 'monitor.ts', 'otel.ts'].map(f => join(src, f))]

function internalUses (files: string[]): string[] {
  const program = ts.createProgram(files, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, allowImportingTsExtensions: true, noEmit: true, strict: true })
  const checker = program.getTypeChecker()
  const found: string[] = []
  for (const file of files) {
    const sf = program.getSourceFile(file)
    assert.ok(sf !== undefined, file)
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node) || ts.isNewExpression(node)) {
        const target = ts.isPropertyAccessExpression(node) ? node.name : node.expression
        let symbol = checker.getSymbolAtLocation(target)
        if (symbol !== undefined && (symbol.flags & ts.SymbolFlags.Alias) !== 0) symbol = checker.getAliasedSymbol(symbol)
        const declarations = ts.isNewExpression(node)
          ? (checker.getResolvedSignature(node)?.declaration === undefined ? [] : [checker.getResolvedSignature(node)!.declaration!])
          : symbol?.declarations ?? []
        for (const d of declarations) {
          if (ts.getJSDocTags(d).some(tag => tag.tagName.text === 'internal')) {
            const { line } = sf.getLineAndCharacterOfPosition(node.getStart())
            found.push(`${file.slice(src.length + 1)}:${line + 1} ${node.getText().slice(0, 60)}`)
          }
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(sf)
  }
  return found
}

test('metrics, control, monitor and otel use no @internal member of the library', () => {
  assert.deepEqual(internalUses(parts), [])
})

test('the check sees an @internal use when there is one', () => {
  // listener.context is @internal: a file that reads it is caught.
  const probe = join(src, 'observability', 'metrics.ts')
  const text = readFileSync(probe, 'utf8')
  assert.ok(!text.includes('.context'))
  const host = join(import.meta.dirname, 'fixtures', 'internal-use.ts')
  assert.deepEqual(internalUses([host]).map(u => u.replace(/^.*?:/, '')), ['5 listener.context', '6 listener.launch'])
})

test('no part of the library subscribes to its own channels', () => {
  for (const file of parts) {
    const text = readFileSync(file, 'utf8')
    const subscriptions = [...text.matchAll(/subscribe\(CHANNELS\.(\w+)/g)].map(m => m[1])
    // The upgrade channel is the command's publication (fastify-pool-cli), counted by the metrics.
    assert.deepEqual(subscriptions.filter(c => c !== 'upgrade'), [], file)
  }
})
