// create-fastify-pool: the project it makes, and its refusal to overwrite.
import { test, type TestContext } from 'node:test'
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
  assert.equal(existsSync(join(app, 'tsconfig.json')), false, 'the JavaScript starter, without --ts')
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
  assert.match(help.stdout(), /npm init fastify-pool my-app -- --ts\n/)
  assert.match(help.stdout(), /^ {2}--ts {9}The TypeScript starter/m)
})

/** What `npm install` would provide the created project, linked from this workspace. */
function linkWorkspace (app: string, names: string[]): void {
  mkdirSync(join(app, 'node_modules', '@types'), { recursive: true })
  const from: Record<string, string> = { 'fastify-pool': 'packages/fastify-pool', 'fastify-pool-cli': 'packages/fastify-pool-cli' }
  for (const name of names) symlinkSync(realpathSync(join(ROOT, from[name] ?? `node_modules/${name}`)), join(app, 'node_modules', name), 'dir')
}

/** Run a created project's tests; they must run some and all pass. */
async function passes (t: TestContext, app: string, files: string[]): Promise<void> {
  // The workspace packages have no dist/: their sources run through tsx, as `npm test` would run the built ones.
  const tests = run(t, ['--conditions=source', '--import', 'tsx', '--test', '--test-reporter=tap', ...files], { cwd: app, env: { NODE_TEST_CONTEXT: undefined } })
  const { code } = await tests.exited
  assert.equal(code, 0, tests.stdout() + tests.stderr())
  assert.match(tests.stdout(), /^# pass [1-9]/m)
  assert.match(tests.stdout(), /^# fail 0$/m)
}

test('the created project passes its own tests against the workspace packages', async (t) => {
  const dir = tempDir(t)
  const created = run(t, [CREATE, 'app'], { cwd: dir })
  assert.equal((await created.exited).code, 0, created.stderr())
  const app = join(dir, 'app')
  linkWorkspace(app, ['fastify-pool', 'fastify-pool-cli', 'fastify', 'tsx'])
  await passes(t, app, [])
})

test('--ts creates the TypeScript starter: .ts route modules and tests, a start script that works on Node 20, a type check in npm test', async (t) => {
  const dir = tempDir(t)
  const child = run(t, [CREATE, 'typed', '--ts'], { cwd: dir, env: { npm_config_user_agent: undefined } })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /cd typed\n {2}npm install\n {2}npm start/)
  const app = join(dir, 'typed')
  for (const file of ['package.json', '.gitignore', 'pool.yaml', 'README.md', 'tsconfig.json', 'routes/public.ts', 'routes/admin.ts', 'test/routes.test.ts', 'test/listen.test.ts']) {
    assert.ok(existsSync(join(app, file)), file)
  }
  for (const file of ['_package.json', 'routes/public.js', 'routes/admin.js', 'test/routes.test.js']) assert.equal(existsSync(join(app, file)), false, file)
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { name: string, scripts: Record<string, string>, dependencies: Record<string, string>, devDependencies: Record<string, string> }
  assert.equal(pkg.name, 'typed')
  assert.equal(pkg.scripts.start, 'exec node --import tsx node_modules/fastify-pool-cli/bin/fastify-pool.js start --dev-cert')
  assert.match(pkg.scripts.test ?? '', /^tsc --noEmit && node --import tsx --test /)
  assert.equal(pkg.dependencies['fastify-pool'], `^${VERSION}`)
  assert.equal(pkg.dependencies['fastify-pool-cli'], `^${VERSION}`)
  assert.ok(pkg.dependencies.tsx, 'tsx is a dependency: npm start needs it')
  assert.ok(pkg.devDependencies.typescript)
  const yaml = readFileSync(join(app, 'pool.yaml'), 'utf8')
  assert.match(yaml, /^# yaml-language-server: \$schema=\.\/node_modules\/fastify-pool-cli\/schema\/pool\.schema\.json$/m)
  assert.match(yaml, /^ {2}public: \.\/routes\/public\.ts$/m)
  assert.match(yaml, /^ {2}admin: \.\/routes\/admin\.ts$/m)

  // Started by `npm init fastify-pool my-app --ts`, without `--`: npm keeps the flag and passes it on as npm_config_ts.
  const viaNpm = run(t, [CREATE, 'typed-too'], { cwd: dir, env: { npm_config_ts: 'true' } })
  assert.equal((await viaNpm.exited).code, 0, viaNpm.stderr())
  assert.ok(existsSync(join(dir, 'typed-too/routes/public.ts')))
})

test('the created TypeScript project type-checks and passes its own tests against the workspace packages', async (t) => {
  const dir = tempDir(t)
  const created = run(t, [CREATE, 'app', '--ts'], { cwd: dir })
  assert.equal((await created.exited).code, 0, created.stderr())
  const app = join(dir, 'app')
  linkWorkspace(app, ['fastify-pool', 'fastify-pool-cli', 'fastify', 'tsx', 'typescript', '@types/node'])
  // Its `npm run typecheck`, with the workspace packages' types read from their sources.
  const typecheck = run(t, [join(app, 'node_modules/typescript/bin/tsc'), '--noEmit', '--customConditions', 'source'], { cwd: app })
  const { code } = await typecheck.exited
  assert.equal(code, 0, typecheck.stdout() + typecheck.stderr())
  // Files, not a glob: Node 20's --test takes no glob (npm's shell expands the one in `npm test`).
  await passes(t, app, ['test/listen.test.ts', 'test/routes.test.ts'])
})
