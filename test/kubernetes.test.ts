// Keeps examples/kubernetes honest: the probes of the Deployment point at
// the listener and the paths that pool.yaml serves, the grace period covers
// the pool's shutdown, and the image runs the command as a non-root user.
// Then the pool file itself, started as the container would start it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { loadConfigFile } from 'fastify-pool-cli'
import { BIN, ROOT, get, logLines, run } from './fixtures/cli.ts'

const DIR = join(ROOT, 'examples/kubernetes')
const TOKEN = 'kubernetes-test-token-0123456789'
// The command's margin beyond stopTimeout for onClose hooks before it gives up (start.ts).
const CLOSE_MARGIN_S = 5

interface Probe { httpGet: { path: string, port: string | number }, periodSeconds?: number, failureThreshold?: number }
interface Container { ports: Array<{ name: string, containerPort: number }>, env: Array<{ name: string, value?: string }>, startupProbe: Probe, readinessProbe: Probe, livenessProbe: Probe }

function manifests (): Array<Record<string, any>> {
  return ['deployment.yaml', 'service.yaml'].flatMap(f => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map(d => d.toJS() as Record<string, any>))
}

async function poolFile (env: Record<string, string>): Promise<Awaited<ReturnType<typeof loadConfigFile>>> {
  return loadConfigFile(join(DIR, 'pool.yaml'), { env: { POOL_TOKEN: TOKEN, ...env } })
}

test('the Deployment probes the admin listener on the paths pool.yaml serves, on its port', async () => {
  const deployment = manifests().find(m => m.kind === 'Deployment')
  assert.ok(deployment !== undefined)
  const container = deployment.spec.template.spec.containers[0] as Container
  const env = Object.fromEntries(container.env.filter(e => e.value !== undefined).map(e => [e.name, e.value as string]))
  const loaded = await poolFile(env)
  const byName = new Map(loaded.options.servers.map(s => [s.name, s]))
  const portOf = (name: string | number): number => typeof name === 'number' ? name : container.ports.find(p => p.name === name)?.containerPort ?? -1
  const admin = byName.get('admin')
  assert.ok(admin !== undefined && admin.address.kind === 'tcp')
  for (const [kind, probe] of [['startup', container.startupProbe], ['readiness', container.readinessProbe], ['liveness', container.livenessProbe]] as const) {
    assert.equal(portOf(probe.httpGet.port), admin.address.port, `${kind} probe port`)
  }
  assert.equal(container.startupProbe.httpGet.path, admin.health.readiness)
  assert.equal(container.readinessProbe.httpGet.path, admin.health.readiness)
  assert.equal(container.livenessProbe.httpGet.path, admin.health.liveness)
  // The kubelet probes from the node: the admin listener must not be loopback only.
  assert.equal(admin.address.host, undefined, 'the admin listener listens on every interface of the pod')
  const pub = byName.get('public')
  assert.ok(pub !== undefined && pub.address.kind === 'tcp')
  assert.equal(portOf('http'), pub.address.port)
  const service = manifests().find(m => m.kind === 'Service')
  assert.equal(service?.spec.ports[0].targetPort, 'http', 'the Service sends to the public listener only')
  assert.equal(deployment.metadata.annotations, undefined)
  assert.equal(Number(deployment.spec.template.metadata.annotations['prometheus.io/port']), admin.address.port)
  assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/path'], (loaded.options.metrics as { path: string }).path)
})

test('the grace period covers the shutdown, and the readiness delay covers the readiness probe', async () => {
  const deployment = manifests().find(m => m.kind === 'Deployment')
  const spec = deployment?.spec.template.spec
  const container = spec.containers[0] as Container
  const env = Object.fromEntries(container.env.filter(e => e.value !== undefined).map(e => [e.name, e.value as string]))
  const { defaults } = (await poolFile(env)).options
  const stopTimeout = (defaults.stopTimeout ?? 10_000) / 1000
  const shutdownDelay = (defaults.shutdownDelay ?? 0) / 1000
  assert.ok(spec.terminationGracePeriodSeconds > stopTimeout + CLOSE_MARGIN_S, `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} must be above stopTimeout ${stopTimeout} s + ${CLOSE_MARGIN_S} s`)
  assert.ok(shutdownDelay < stopTimeout, 'the readiness delay leaves time for the drain within stopTimeout')
  const readiness = container.readinessProbe
  assert.ok(shutdownDelay >= (readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3), 'readiness fails before the drain begins')
  assert.equal(deployment?.spec.strategy.rollingUpdate.maxUnavailable, 0)
  assert.equal(spec.securityContext.runAsNonRoot, true)
})

test('the image: a slim Node LTS, production dependencies only, non-root, the command as entry point', () => {
  const docker = readFileSync(join(DIR, 'Dockerfile'), 'utf8')
  assert.match(docker, /^FROM node:(2[02468])-slim$/m, 'an even-numbered (LTS) slim image')
  assert.match(docker, /npm ci --omit=dev/)
  assert.match(docker, /^USER node$/m)
  assert.ok(docker.indexOf('USER node') > docker.indexOf('RUN npm'), 'installed as root, run as node')
  assert.match(docker, /^ENTRYPOINT \["node", "node_modules\/fastify-pool-cli\/bin\/fastify-pool\.js", "start", "--json", "pool\.yaml"\]$/m)
  const pkg = JSON.parse(readFileSync(join(DIR, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, devDependencies?: unknown }
  assert.deepEqual(Object.keys(pkg.dependencies).sort(), ['fastify', 'fastify-pool', 'fastify-pool-cli'])
  assert.equal(pkg.devDependencies, undefined)
})

test('the pool file starts as the container starts it, and SIGTERM runs the shutdown sequence', async (t) => {
  const child = run(t, [BIN, 'start', '--json', 'pool.yaml'], {
    cwd: DIR,
    env: { POOL_TOKEN: TOKEN, PUBLIC_LISTEN: '127.0.0.1:0', ADMIN_LISTEN: '127.0.0.1:0', SHUTDOWN_DELAY: '300', STOP_TIMEOUT: '5000' }
  })
  await child.waitFor(out => /"msg":"pool started"/.test(out))
  const at = Object.fromEntries((logLines(child.stdout()).find(l => l.msg === 'pool started')?.listeners as Array<{ name: string, url: string }>).map(l => [l.name, l.url]))
  assert.deepEqual(JSON.parse((await get(`${at.public}/`)).body), { hello: 'kubernetes' })
  assert.equal((await get(`${at.admin}/readyz`)).status, 200)
  assert.match((await get(`${at.admin}/metrics`)).body, /fastify_pool_listener_up\{listener="public"\} 1/)
  assert.equal((await get(`${at.admin}/pool`)).status, 401, 'the control API wants the token')
  assert.equal((await get(`${at.admin}/pool`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
  child.proc.kill('SIGTERM')
  await child.waitFor(out => /draining the pool/.test(out))
  assert.equal((await get(`${at.admin}/readyz`)).status, 503, 'readiness fails at once')
  assert.equal((await get(`${at.public}/`)).status, 200, 'requests are still served during the delay')
  assert.equal((await child.exited).code, 0)
})
