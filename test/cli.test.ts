// The fastify-pool command end to end: child processes on real sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createDevCertificate } from 'fastify-pool-cli'
import { BIN, get, logLines, run, tempDir } from './fixtures/cli.ts'
import { BASIC, VERSION, entry, project, urls } from './fixtures/cli-project.ts'

test('--version and --help', async (t) => {
  const version = run(t, [BIN, '--version'])
  assert.equal((await version.exited).code, 0)
  assert.equal(version.stdout().trim(), VERSION)
  const help = run(t, [BIN, '--help'])
  assert.equal((await help.exited).code, 0)
  assert.match(help.stdout(), /Usage: fastify-pool <command>/)
  const helpHelp = run(t, [BIN, 'help', '--help'])
  assert.equal((await helpHelp.exited).code, 0, 'help --help is help, not a usage error')
  assert.equal(helpHelp.stdout(), help.stdout())
  assert.match(help.stdout(), /validate/)
  const none = run(t, [BIN])
  assert.equal((await none.exited).code, 2, 'no command is a usage error')
  assert.match(none.stderr(), /Usage:/)
})

test('unknown commands, options and values are usage errors (exit 2)', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown command "frobnicate"; expected one of start, validate, ps, restart, stop, reload, canary, upgrade, completion$/m],
    [['--frob'], /unknown option "--frob"/],
    [['start', '--frob'], /start: unknown option "--frob"/],
    [['validate', '--pretty'], /validate: unknown option "--pretty"/],
    [['start', '-c'], /option -c, --config <value> needs a value/],
    [['start', 'a.yaml', 'b.yaml'], /one configuration file at most/],
    [['start', 'a.yaml', '-c', 'b.yaml'], /the file is given twice/],
    [['start', '--pretty', '--json'], /cannot be used together/],
    // A typo gets the nearest name; a word that is no typo of any gets none.
    [['valdiate'], /unknown command "valdiate"; expected one of .*; did you mean "validate"\?$/m],
    [['start', '--wrokers', '2'], /start: unknown option "--wrokers"; did you mean "--workers"\?$/m],
    [['help', 'upgarde'], /help: unknown command "upgarde"; expected one of .*; did you mean "upgrade"\?$/m],
    [['--verison'], /unknown option "--verison"; a command comes first: .*; did you mean "--version"\?$/m],
    // A value that looks like an option is not taken silently, nor called "no value".
    [['start', '--pid-file', '-p.pid'], /start: option --pid-file needs a value; one that starts with "-" is written --pid-file=VALUE$/m]
  ]
  await Promise.all(cases.map(async ([args, message]) => {
    const child = run(t, [BIN, ...args])
    assert.equal((await child.exited).code, 2, args.join(' '))
    assert.match(child.stderr(), message)
    if (args.includes('--json')) {
      // With --json the usage error is one JSON line too.
      const line = JSON.parse(child.stderr().trim()) as { code: string, message: string }
      assert.equal(line.code, 'FST_POOL_USAGE')
      assert.match(line.message, message)
    } else {
      assert.match(child.stderr(), /fastify-pool --help/)
    }
  }))
})

test('validate accepts a good file', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /pool\.yaml: valid \(3 listeners: public, secure, admin\)/)
})

test('validate reports every problem of a bad file with its path, and exits 1', async (t) => {
  const dir = project(t, `
handlers:
  public: ./routes/public.js
  gone: ./routes/missing.js
servers:
  - name: public
    listen: \${NOT_SET_ANYWHERE_42}
    handler: public
  - name: secure
    listen: 127.0.0.1:70000
    handler: nope
    tls:
      cert: ./missing.crt
      key: ./missing.key
  - name: public
    listen: 127.0.0.1:0
    colour: blue
`)
  const child = run(t, [BIN, 'validate', '-c', join(dir, 'pool.yaml')], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  const lines = child.stderr().trim().split('\n')
  const expected = [
    // A problem in a value found after parsing still says where the value is.
    /^pool\.yaml:\d+:\d+: servers\[0\]\.listen: environment variable NOT_SET_ANYWHERE_42 is not set/,
    /^pool\.yaml: handlers\.gone: module not found: .*routes\/missing\.js$/,
    /^pool\.yaml: servers\[1\]\.listen: port 70000 is out of range/,
    /^pool\.yaml: servers\[1\]\.handler: no handler for key "nope"/,
    /^pool\.yaml: servers\[1\]\.tls\.cert: cert file not found: .*missing\.crt$/,
    /^pool\.yaml: servers\[1\]\.tls\.key: key file not found: .*missing\.key$/,
    /^pool\.yaml: servers\[2\]\.colour: is not a known option$/,
    /^pool\.yaml: servers\[2\]\.name: "public" is already used/,
    /^pool\.yaml: servers\[2\]\.handler: no handler for key "default"/
  ]
  for (const re of expected) assert.ok(lines.some(l => re.test(l)), `missing ${re} in:\n${lines.join('\n')}`)
  assert.match(lines.at(-1) ?? '', /^pool\.yaml: 9 problems$/)
})

test('validate reports a YAML syntax error with its line and column', async (t) => {
  const dir = project(t, 'servers:\n  - name: a\n    listen: [1\n  - name: b\n')
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /^pool\.yaml:4:3: YAML syntax error: /m)
})

test('validate without a file says which file is missing', async (t) => {
  const dir = tempDir(t)
  const child = run(t, [BIN, 'validate'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /^pool\.yaml: file not found \(looked for pool\.yaml, pool\.yml, pool\.json, pool\.mjs, pool\.js in .+; name the file: fastify-pool validate FILE\)$/m)
})

test('the file can be given as an argument: fastify-pool validate pool.yaml', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'validate', 'pool.yaml'], { cwd: dir })
  assert.equal((await child.exited).code, 0, child.stderr())
  assert.match(child.stdout(), /pool\.yaml: valid \(\d+ listeners/)
})

test('start refuses an invalid file and starts nothing', async (t) => {
  const dir = project(t, 'servers:\n  - name: a\n    listen: nowhere\n')
  const child = run(t, [BIN, 'start'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  assert.match(child.stderr(), /pool\.yaml: servers\[0\]\.listen: /)
  assert.match(child.stderr(), /nothing was started/)
})

test('--pretty prints readable logs and the table of listeners', async (t) => {
  const dir = project(t, BASIC)
  const child = run(t, [BIN, 'start', '--pretty'], { cwd: dir })
  // Two pipes: what the child wrote to each arrives here in no set order.
  await child.waitFor(out => /pool started/.test(out) && /^admin\s.*running$/m.test(child.stderr()))
  assert.match(child.stdout(), /INFO.*listener started/)
  // The table for people goes to stderr.
  assert.match(child.stderr(), /^NAME\s+BIND\s+URL\s+HANDLER\s+STATE$/m)
  assert.match(child.stderr(), /^public\s+127\.0\.0\.1:0\s+http:\/\/127\.0\.0\.1:\d+\s+public\s+running$/m)
  assert.doesNotMatch(child.stdout(), /^\{"level"/m)
  child.proc.kill('SIGTERM')
  const ex = await child.exited
  assert.equal(ex.code, 0, JSON.stringify(ex) + child.stdout() + child.stderr())
})

test('--dev-cert writes a self-signed certificate where the TLS files are missing, and never overwrites one', async (t) => {
  const dir = project(t, `
handlers:
  public: ./routes/public.js
servers:
  - name: secure
    listen: 127.0.0.1:0
    handler: public
    tls:
      cert: ./certs/dev.crt
      key: ./certs/dev.key
`)
  const first = run(t, [BIN, 'start', '--json', '--dev-cert'], { cwd: dir })
  await first.waitFor(out => /"msg":"pool started"/.test(out))
  assert.match(first.stdout(), /wrote a self-signed development certificate/)
  const cert = readFileSync(join(dir, 'certs/dev.crt'), 'utf8')
  const x509 = new X509Certificate(cert)
  assert.equal(x509.checkHost('localhost'), 'localhost')
  assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1')
  assert.equal(statSync(join(dir, 'certs/dev.key')).mode & 0o077, 0, 'the key is private to its owner')
  const at = urls(entry(first, 'pool started'))
  assert.equal((await get(`${at.secure}/`, { ca: cert })).body, 'public')
  first.proc.kill('SIGTERM')
  assert.equal((await first.exited).code, 0)

  const second = run(t, [BIN, 'start', '--json', '--dev-cert'], { cwd: dir })
  await second.waitFor(out => /"msg":"pool started"/.test(out))
  assert.doesNotMatch(second.stdout(), /wrote a self-signed/)
  assert.equal(readFileSync(join(dir, 'certs/dev.crt'), 'utf8'), cert, 'the existing certificate is kept')
  second.proc.kill('SIGTERM')
  assert.equal((await second.exited).code, 0)
})

test('createDevCertificate() makes a valid certificate for the hosts asked', async () => {
  const { cert, key } = await createDevCertificate({ hosts: ['example.test', '10.1.2.3', 'fe80::1'], days: 2 })
  const x509 = new X509Certificate(cert)
  assert.equal(x509.checkHost('example.test'), 'example.test')
  assert.equal(x509.checkHost('localhost'), undefined)
  assert.equal(x509.checkIP('10.1.2.3'), '10.1.2.3')
  assert.equal(x509.checkIP('fe80::1'), 'fe80::1')
  assert.ok(x509.verify(createPublicKey(key)))
  const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000
  assert.ok(days > 2 && days < 2.1, `valid for ${days} days`)
  assert.equal(x509.ca, false)
})

test('createDevCertificate() gives a certificate that parses, every time', async () => {
  // The first implementation encoded DER by hand and failed about once in 128 runs.
  for (let i = 0; i < 50; i++) {
    const { cert, key } = await createDevCertificate()
    assert.ok(new X509Certificate(cert).checkPrivateKey(createPrivateKey(key)))
  }
})

test('help for one command, completion scripts, and --log-level', async (t) => {
  const [help, flag, unknown, bash, none, level] = await Promise.all([
    run(t, [BIN, 'help', 'stop']),
    run(t, [BIN, 'stop', '--help']),
    run(t, [BIN, 'help', 'frobnicate']),
    run(t, [BIN, 'completion', 'bash']),
    run(t, [BIN, 'completion']),
    run(t, [BIN, 'start', '--log-level', 'loud'])
  ].map(async (c) => ({ code: (await c.exited).code, stdout: c.stdout(), stderr: c.stderr() })))
  assert.equal(help!.code, 0)
  assert.match(help!.stdout, /^Usage: fastify-pool stop GLOB/)
  assert.match(help!.stdout, /--force/)
  assert.match(help!.stdout, /Exit codes:/)
  assert.match(help!.stdout, /Example:/)
  assert.equal(flag!.stdout, help!.stdout)
  assert.equal(unknown!.code, 2)
  assert.equal(bash!.code, 0)
  // The script is valid bash, and it completes the commands.
  const check = spawnSync('bash', ['-n'], { input: bash!.stdout })
  assert.equal(check.status, 0, String(check.stderr))
  const complete = spawnSync('bash', ['-c', `${bash!.stdout}\nCOMP_WORDS=(fastify-pool re); COMP_CWORD=1; _fastify_pool; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' })
  assert.deepEqual(complete.stdout.trim().split(' ').sort(), ['reload', 'restart'])
  assert.equal(none!.code, 2)
  assert.equal(level!.code, 2)
  // What the help says matches what the commands do: an upgrade works with --workers; stop and restart act in every worker.
  const upgrade = run(t, [BIN, 'help', 'upgrade'])
  assert.equal((await upgrade.exited).code, 0)
  assert.doesNotMatch(upgrade.stdout().replace(/\s+/g, ' '), /refused .*with --workers/i)
  assert.match(upgrade.stdout().replace(/\s+/g, ' '), /With --workers the primary and every worker are replaced/)
  assert.match(upgrade.stdout().replace(/\s+/g, ' '), /Refused while the pool starts or stops, during a reload or another upgrade, and for a pool that runs in a terminal, in a container \(as its pid 1 or the child of its init\) or under a package manager/)
  assert.match(help!.stdout.replace(/\s+/g, ' '), /with --workers, in every worker/)
  assert.match(level!.stderr, /--log-level takes one of fatal, error, warn, info, debug, trace, silent/)

  const dir = project(t, BASIC)
  const debug = run(t, [BIN, 'start', '--json', '-l', 'debug'], { cwd: dir })
  await debug.waitFor(out => /"msg":"pool started"/.test(out))
  // The command's own debug line, which info hides.
  assert.ok(logLines(debug.stdout()).some(l => l.level === 20 && l.msg === 'configuration loaded'))
  debug.proc.kill('SIGTERM')
  assert.equal((await debug.exited).code, 0)
})

test('--log-level wins over the file\'s defaults.logLevel for every listener that sets none, and the command\'s own lines', async (t) => {
  const dir = project(t, 'defaults:\n  logLevel: info\nhandlers:\n  public: ./routes/public.js\nservers:\n  - { name: quiet, listen: "127.0.0.1:0", handler: public }\n  - { name: own, listen: "127.0.0.1:0", handler: public, logLevel: info }\n')
  const child = run(t, [BIN, 'start', '--json', '-l', 'warn'], { cwd: dir })
  await child.waitFor(out => logLines(out).some(l => l.listener === 'own' && l.msg === 'listener started'))
  child.proc.kill('SIGTERM')
  assert.equal((await child.exited).code, 0)
  const lines = logLines(child.stdout())
  // The listener that sets its own level keeps it: it says when it stops, and the other does not.
  assert.ok(lines.some(l => l.listener === 'own' && l.msg === 'listener stopped'), child.stdout())
  assert.deepEqual(lines.filter(l => l.listener === 'quiet' || (l.listener === undefined && (l.level as number) < 40)), [], child.stdout())
})

test('a handler module that cannot be imported is reported with its file, line and column', async (t) => {
  const dir = project(t, 'handlers:\n  main: ./bad.mjs\n  boom: ./boom.mjs\nservers:\n  - { name: a, listen: "127.0.0.1:0", handler: main }\n  - { name: b, listen: "127.0.0.1:0", handler: boom }\n')
  writeFileSync(join(dir, 'bad.mjs'), "export default async function (app) {\n  app.get('/', async () => 'x'\n}\n")
  writeFileSync(join(dir, 'boom.mjs'), "const x = 1\nthrow new Error('the database is down ' + x)\nexport default async function () {}\n")
  const child = run(t, [BIN, 'validate', '--json'], { cwd: dir })
  assert.equal((await child.exited).code, 1)
  const problems = child.stderr().trim().split('\n').map(l => JSON.parse(l) as { path?: string, message: string })
  const main = problems.find(p => p.path === 'handlers.main')?.message ?? ''
  assert.match(main, /bad\.mjs:2:\d+: SyntaxError: missing \) after argument list/)
  assert.match(problems.find(p => p.path === 'handlers.boom')?.message ?? '', /boom\.mjs:2:7: the database is down 1/)
})
