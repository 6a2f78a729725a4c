// The live status page of the control API (`GET <path>/dashboard`): plain
// HTML, CSS and a little JavaScript served from here, with nothing fetched
// from elsewhere. The page holds no data of its own: it polls `GET <path>`
// every two seconds, with the token the operator typed when the API needs
// one (kept in the tab's sessionStorage), and offers an action only where
// the control API allows the same request (restart any listener; stop any
// but the one serving the API).

/** What the page's routes send, and the policy that keeps it to itself. */
export const DASHBOARD_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
} as const

export function dashboardHtml (path: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-pool</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${path}/dashboard.css">
<script src="${path}/dashboard.js" defer></script>
</head>
<body data-api="${path}">
<header><h1>fastify-pool</h1><span id="updated">loading…</span></header>
<form id="token" hidden><label>Control token <input type="password" name="token" autocomplete="off"></label><button>Use</button></form>
<p id="error" hidden></p>
<section><h2>Listeners</h2>
<div class="scroll"><table id="listeners"><thead><tr><th class="worker">worker</th><th>name</th><th></th><th>state</th><th>url</th><th>generation</th><th>uptime</th><th>in flight</th><th>upgraded</th><th title="responses per second, about the last 10 s">req/s</th><th title="share of 5xx responses">5xx</th><th>p50</th><th>p99</th><th title="requests answered 503 by load shedding; while it sheds, how long the requests it serves waited; whether new connections wait in the accept queue">shed</th><th>certificate</th><th>last error</th></tr></thead><tbody></tbody></table></div>
</section>
<section><h2>Processes</h2>
<div class="scroll"><table id="processes"><thead><tr><th>process</th><th>pid</th><th>node</th><th>started</th><th>uptime</th><th>cpu</th><th>rss</th><th>heap</th><th>loop delay p99</th></tr></thead><tbody></tbody></table></div>
<p id="restarts"></p>
</section>
</body>
</html>
`
}

export const DASHBOARD_CSS = `:root { font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fafafa; }
header { display: flex; align-items: baseline; gap: 1em; }
h1 { font-size: 1.4em; margin: .5em 0; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
#updated { color: #777; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e4e4e4; white-space: nowrap; }
th { font-weight: 600; color: #555; }
td.state-running { color: #17803d; } td.state-draining, td.state-starting { color: #a15c00; }
td.state-failed { color: #b3261e; } td.state-stopped, td.state-disabled { color: #888; }
td.shedding { color: #a15c00; }
#error { color: #b3261e; }
button { font: inherit; padding: .1em .6em; margin-right: .3em; }
/* Wide tables scroll inside the page; the actions sit next to the name, so they stay in view on a narrow window. */
.scroll { overflow-x: auto; }
#listeners.single .worker { display: none; }
`

export const DASHBOARD_JS = `'use strict'
const api = document.body.dataset.api
let token = sessionStorage.getItem('fastify-pool-token') || ''

function headers () { return token === '' ? {} : { authorization: 'Bearer ' + token } }
function cell (row, text, className) { const td = row.insertCell(); td.textContent = text; if (className) td.className = className; return td }
function duration (ms) {
  const s = Math.floor(ms / 1000)
  if (ms === 0) return '-'
  if (s < 60) return s + 's'
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's'
  if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm'
  return Math.floor(s / 86400) + 'd' + String(Math.floor(s / 3600) % 24).padStart(2, '0') + 'h'
}
function mib (bytes) { return Math.round(bytes / 1048576) + ' MiB' }

async function act (action, name) {
  const res = await fetch(api + '/' + action + '?name=' + encodeURIComponent(name), { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body: '{}' })
  const body = await res.json().catch(() => ({}))
  if (!res.ok) show(body.error || (action + ' answered ' + res.status))
  refresh()
}

function show (message) {
  const p = document.getElementById('error')
  p.textContent = message
  p.hidden = message === ''
}

function ms (n) {
  return n === null || n === undefined ? '-' : (n < 10 ? n.toFixed(1) : String(Math.round(n))) + ' ms'
}

function render (status) {
  const control = status.control
  const rows = Array.isArray(status.workers)
    ? status.workers.flatMap(w => w.listeners.map(l => [w.id + ' (' + (w.pid ?? '?') + ')', l]))
    : status.listeners.map(l => ['-', l])
  // One process: no worker column (every cell of it would say '-').
  document.getElementById('listeners').classList.toggle('single', !Array.isArray(status.workers))
  const body = document.querySelector('#listeners tbody')
  body.replaceChildren()
  for (const [worker, l] of rows) {
    const row = body.insertRow()
    row.dataset.listener = l.name
    cell(row, worker, 'worker')
    cell(row, l.name)
    const actions = row.insertCell()
    actions.className = 'actions'
    const state = l.disabled ? 'disabled' : l.state
    cell(row, state, 'state-' + state)
    cell(row, l.url || l.expose || l.bind)
    const canary = l.canary ? ' (canary ' + l.canary.canary.generation + ': ' + l.canary.share + ' %, ' + Math.ceil(l.canary.left / 1000) + ' s left)' : ''
    cell(row, String(l.generation) + ((l.retiring || []).length > 0 ? ' (+' + l.retiring.length + ' retiring)' : '') + canary, 'generation')
    cell(row, duration(l.uptime))
    cell(row, String(l.inflight))
    cell(row, String(l.upgraded ?? 0))
    // Traffic comes with metrics on; without them these cells say so.
    const t = l.traffic
    cell(row, t ? (t.rate < 10 ? t.rate.toFixed(1) : String(Math.round(t.rate))) : 'metrics off', 'rate')
    cell(row, t && t.errorRate !== null ? (t.errorRate * 100).toFixed(1) + ' %' : '-', 'errors')
    cell(row, t ? ms(t.p50) : '-', 'p50')
    cell(row, t ? ms(t.p99) : '-', 'p99')
    const o = l.overload
    cell(row, o ? String(o.shed) + (o.shedding ? ' (shedding, waits ' + ms(o.delay) + ')' : '') + (o.connectionsWait ? ' (connections wait ' + ms(o.acceptWait || 0) + ')' : '') : 'off', o && (o.shedding || o.connectionsWait) ? 'shed shedding' : 'shed')
    cell(row, l.certificate ? l.certificate.notAfter.slice(0, 10) + ' (' + l.certificate.daysLeft + ' d)' : '-')
    cell(row, l.lastError || '-')
    // With workers an action would reach whichever worker answers: none here (a reload rolls them all).
    if (worker === '-') {
      const restart = document.createElement('button')
      restart.textContent = 'restart'
      restart.onclick = () => act('restart', l.name)
      actions.append(restart)
      if (l.name !== control) {
        const stop = document.createElement('button')
        stop.textContent = l.state === 'running' ? 'stop' : 'start'
        stop.onclick = () => act(l.state === 'running' ? 'stop' : 'start', l.name)
        actions.append(stop)
      }
    }
  }
  const processes = Array.isArray(status.workers)
    ? [['primary', status.primary], ...status.workers.map(w => ['worker ' + w.id, w.process])]
    : [['pool', status.process]]
  const pbody = document.querySelector('#processes tbody')
  pbody.replaceChildren()
  for (const [name, p] of processes) {
    if (!p) continue
    const row = pbody.insertRow()
    for (const text of [name, String(p.pid), p.node, p.startedAt ? p.startedAt.slice(0, 19).replace('T', ' ') : '-', duration(p.uptime), p.cpu.toFixed(1) + ' %', mib(p.memory.rss), mib(p.memory.heapUsed), p.eventLoopDelay.p99.toFixed(1) + ' ms']) cell(row, text)
  }
  document.getElementById('restarts').textContent = status.restarts === undefined ? '' : 'workers restarted since the start: ' + status.restarts
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString()
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1)
}

async function refresh () {
  try {
    const res = await fetch(api, { headers: headers(), cache: 'no-store' })
    if (res.status === 401) {
      document.getElementById('token').hidden = false
      show(token === '' ? 'this control API needs its token' : 'the token was refused')
      return
    }
    const body = await res.json()
    if (!res.ok) { show(body.error || ('the pool answered ' + res.status)); return }
    show('')
    render(body)
  } catch (err) {
    show('the pool does not answer: ' + err.message)
  }
}

document.getElementById('token').onsubmit = (event) => {
  event.preventDefault()
  token = new FormData(event.target).get('token')
  sessionStorage.setItem('fastify-pool-token', token)
  event.target.hidden = true
  refresh()
}
refresh()
setInterval(refresh, 2000)
`
