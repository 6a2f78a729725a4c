// A handler module written in TypeScript: served wherever Node runs
// TypeScript (22.18+ and 23.6+ strip types by default), and elsewhere
// refused in one line that says how to make it work.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { typeScriptAdvice } from '../packages/fastify-pool-cli/src/handler-modules.ts'
import { BIN, run, tempDir } from './fixtures/cli.ts'

test('a .ts handler module: validated where this Node strips types; elsewhere the import error becomes one line of advice', async (t) => {
  const dir = tempDir(t, 'fastify-pool-ts-')
  const app = join(dir, 'app.ts')
  writeFileSync(app, 'import type { FastifyInstance } from \'fastify\'\nexport default async function (app: FastifyInstance): Promise<void> { app.get(\'/\', async () => \'typed\') }\n')
  writeFileSync(join(dir, 'pool.yaml'), 'servers:\n  - name: a\n    listen: 127.0.0.1:0\nhandlers:\n  default: ./app.ts\n')
  // What this Node does with a .ts module by itself (no tsx), in a plain child process.
  const code = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(pathToFileURL(app).href)}).then(() => console.log('imported'), (e) => console.log(e.code))`], { env: { ...process.env, NODE_OPTIONS: '' } }, (_err, stdout) => resolve(stdout.trim()))
  })
  if (code === 'imported') {
    const validate = run(t, [BIN, 'validate', 'pool.yaml'], { cwd: dir })
    assert.equal((await validate.exited).code, 0, validate.stdout() + validate.stderr())
    return
  }
  assert.equal(code, 'ERR_UNKNOWN_FILE_EXTENSION')
  const advice = typeScriptAdvice(Object.assign(new Error(`Unknown file extension ".ts" for ${app}`), { code }), app)
  assert.equal(advice, `cannot import ${app}: Node ${process.version} does not run TypeScript by itself; run the command on Node 22.18+ or 23.6+ (they strip types), through tsx (node --import tsx node_modules/fastify-pool-cli/bin/fastify-pool.js start), or compile the module to JavaScript`)
  assert.equal(typeScriptAdvice(Object.assign(new Error('x'), { code }), join(dir, 'app.coffee')), undefined, 'only TypeScript gets this advice')
})
