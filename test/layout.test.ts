// The library's tree shows its architecture (docs/architecture.md, "Files"):
// a folder imports only from itself and from the folders before it, nothing
// imports in a loop (type-only imports count), and the page lists every file
// under the folder it is in.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { ROOT } from './fixtures/cli.ts'

const SRC = join(ROOT, 'packages/fastify-pool/src')
/** Lowest first; '' is the top of src/. */
const ORDER = ['base', 'config', 'listener', 'observability', 'control', '']

const CLI = join(ROOT, 'packages/fastify-pool-cli/src')

function sources (root = SRC, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? sources(root, join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(root, join(dir, e.name))] : [])
}

const folderOf = (file: string): string => dirname(file) === '.' ? '' : dirname(file)

/** Every file of the library, with the library files it imports (static, dynamic, re-exports, type-only). */
function importGraph (root = SRC): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sources(root)) {
    const text = readFileSync(join(root, file), 'utf8')
    const targets = [...text.matchAll(/(?:from |import\()\s*'(\.{1,2}\/[^']+)'/g)]
      .map(m => relative(root, resolve(root, dirname(file), m[1] as string)))
    graph.set(file, targets)
  }
  return graph
}

test('every file is in one of the folders, and the folders are the ones the page names', () => {
  const folders = new Set(sources().map(folderOf))
  assert.deepEqual([...folders].sort(), [...ORDER].sort())
})

test('no file imports from a folder above its own', () => {
  const upward: string[] = []
  for (const [file, targets] of importGraph()) {
    for (const target of targets) {
      assert.ok(sources().includes(target), `${file} imports ${target}, which exists`)
      if (ORDER.indexOf(folderOf(target)) > ORDER.indexOf(folderOf(file))) upward.push(`${file} -> ${target}`)
    }
  }
  assert.deepEqual(upward, [])
})

test('no import loop, type-only imports included, in the library and in the command', () => {
  for (const root of [SRC, CLI]) assert.deepEqual(loopsIn(importGraph(root)), [], root)
})

function loopsIn (graph: Map<string, string[]>): string[] {
  const done = new Set<string>()
  const loops: string[] = []
  const visit = (file: string, path: string[]): void => {
    const at = path.indexOf(file)
    if (at >= 0) { loops.push([...path.slice(at), file].join(' -> ')); return }
    if (done.has(file)) return
    for (const target of graph.get(file) ?? []) visit(target, [...path, file])
    done.add(file)
  }
  for (const file of graph.keys()) visit(file, [])
  return loops
}

test('docs/architecture.md lists every file under the folder it is in', () => {
  const page = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8')
  const listed = new Map<string, string>()
  let folder: string | undefined
  for (const line of page.split('\n')) {
    const heading = /^### (?:`(\w+)\/`|the top of `src\/`)/.exec(line)
    if (heading !== null) folder = heading[1] ?? ''
    else if (line.startsWith('### ')) folder = undefined
    const row = /^\| `([\w-]+\.ts)` \|/.exec(line)
    if (row !== null && folder !== undefined) listed.set(join(folder, row[1] as string), folder)
  }
  assert.deepEqual([...listed.keys()].sort(), sources().sort())
})
