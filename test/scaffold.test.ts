// create-fastify-pool: the project it makes, and its refusal to overwrite.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, run, tempDir } from './fixtures/cli.ts'

const CREATE = join(ROOT, 'packages/create-fastify-pool/bin/create-fastify-pool.js')
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'packages/create-fastify-pool/package.json'), 'utf8')) as { version: string }).version

test('creates a project from the starter, named after its folder', async (t) => {
  const dir = tempDir(t)
  const child = run(t, [CREATE, 'My App'], { cwd: dir, env: { npm_config_user_agent: undefined } })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /cd 'My App'\n {2}npm install\n {2}npm start/)
  const app = join(dir, 'My App')
  for (const file of ['package.json', '.gitignore', 'pool.yaml', 'README.md', 'routes/public.js', 'routes/admin.js', 'test/routes.test.js']) {
    assert.ok(existsSync(join(app, file)), file)
  }
  assert.equal(existsSync(join(app, '_package.json')), false)
  assert.equal(existsSync(join(app, 'certs')), false, 'no development certificate is copied')
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { name: string, scripts: Record<string, string>, dependencies: Record<string, string> }
  assert.equal(pkg.name, 'my-app')
  assert.equal(pkg.scripts.start, 'exec fastify-pool start --dev-cert')
  assert.equal(pkg.dependencies['fastify-pool'], `^${VERSION}`)
  assert.equal(pkg.dependencies['fastify-pool-cli'], `^${VERSION}`)
  assert.match(readFileSync(join(app, 'pool.yaml'), 'utf8'), /^# yaml-language-server: \$schema=\.\/node_modules\/fastify-pool-cli\/schema\/pool\.schema\.json$/m)
})

test('refuses a folder that is not empty and changes nothing in it; an empty one is fine', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'busy'))
  writeFileSync(join(dir, 'busy/pool.yaml'), 'mine\n')
  const child = run(t, [CREATE, 'busy'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /busy is not empty \(pool\.yaml\); choose a new or empty folder/)
  assert.equal(readFileSync(join(dir, 'busy/pool.yaml'), 'utf8'), 'mine\n')

  mkdirSync(join(dir, 'empty'))
  // Started by `pnpm create`, it says pnpm.
  const ok = run(t, [CREATE, 'empty'], { cwd: dir, env: { npm_config_user_agent: 'pnpm/12.4.2 npm/? node/v20' } })
  assert.equal((await ok.exited).code, 0, ok.stderr())
  assert.match(ok.stdout(), /cd empty\n {2}pnpm install\n {2}pnpm start/)
  assert.ok(existsSync(join(dir, 'empty/pool.yaml')))
})

test('unknown options and extra arguments are usage errors', async (t) => {
  const dir = tempDir(t)
  const bad = run(t, [CREATE, '--force', 'x'], { cwd: dir })
  assert.equal((await bad.exited).code, 2)
  assert.match(bad.stderr(), /unknown option "--force"/)
  const two = run(t, [CREATE, 'a', 'b'], { cwd: dir })
  assert.equal((await two.exited).code, 2)
  assert.equal(existsSync(join(dir, 'a')), false)
  const help = run(t, [CREATE, '--help'], { cwd: dir })
  assert.equal((await help.exited).code, 0)
  assert.match(help.stdout(), /npm init fastify-pool my-app/)
})

test('the created project passes its own tests against the workspace packages', async (t) => {
  const dir = tempDir(t)
  const created = run(t, [CREATE, 'app'], { cwd: dir })
  assert.equal((await created.exited).code, 0, created.stderr())
  const app = join(dir, 'app')
  // What `npm install` would provide, linked from this workspace.
  mkdirSync(join(app, 'node_modules'))
  const link = (name: string, to: string): void => symlinkSync(realpathSync(to), join(app, 'node_modules', name), 'dir')
  link('fastify-pool', join(ROOT, 'packages/fastify-pool'))
  link('fastify-pool-cli', join(ROOT, 'packages/fastify-pool-cli'))
  link('fastify', join(ROOT, 'node_modules/fastify'))
  link('tsx', join(ROOT, 'node_modules/tsx'))
  // The workspace packages have no dist/: their sources run through tsx, as `npm test` would run the built ones.
  const tests = run(t, ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=tap'], { cwd: app, env: { NODE_TEST_CONTEXT: undefined } })
  const { code } = await tests.exited
  assert.equal(code, 0, tests.stdout() + tests.stderr())
  assert.match(tests.stdout(), /^# pass [1-9]/m)
  assert.match(tests.stdout(), /^# fail 0$/m)
})
