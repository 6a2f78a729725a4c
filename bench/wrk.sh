#!/usr/bin/env bash
# Cross-check of the request-overhead figures with wrk, a load generator in C
# that needs far less CPU per request than autocannon, and sends no pipelined
# requests. Each server runs pinned to core 1, wrk to core 0, one at a time,
# in the order b a b c b d (each variant next to a bare Fastify run).
#   bench/wrk.sh [seconds per run, default 10] [connections, default 100]
# Needs wrk (apt-get install -y wrk) and, for pinning, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-100}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

SERVER_CPU=()
CLIENT_CPU=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=(taskset -c 1)
  CLIENT_CPU=(taskset -c 0)
fi

echo "# wrk cross-check: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), node $(node --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
PINNING="not pinned"
[ "${#SERVER_CPU[@]}" -gt 0 ] && PINNING="server on core 1, wrk on core 0"
echo "# ${CONNECTIONS} connections, 1 thread, ${DURATION} s per run, ${PINNING}"

PID=""
OUT=""
cleanup () {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ -n "$OUT" ]; then rm -f "$OUT"; fi
}
trap cleanup EXIT

run () {
  local variant="$1"
  OUT="$(mktemp)"
  ${SERVER_CPU[@]+"${SERVER_CPU[@]}"} node --conditions=source --import tsx bench/target.ts "$variant" >"$OUT" &
  PID=$!
  # The server prints its URL once it listens; wait at most 30 s.
  local url=""
  for _ in $(seq 1 300); do
    url="$(head -1 "$OUT" 2>/dev/null || true)"
    [ -n "$url" ] && break
    kill -0 "$PID" 2>/dev/null || { echo "server $variant exited early" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "server $variant did not start" >&2; exit 1; }
  # Warm-up, then the measured run.
  ${CLIENT_CPU[@]+"${CLIENT_CPU[@]}"} wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null
  local result
  result="$(${CLIENT_CPU[@]+"${CLIENT_CPU[@]}"} wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")"
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ { print $2 }' <<<"$result")"
  p50="$(awk '$1 == "50%" { print $2 }' <<<"$result")"
  p99="$(awk '$1 == "99%" { print $2 }' <<<"$result")"
  printf '| %-8s | %12s | %8s | %8s |\n' "$variant" "$rps" "$p50" "$p99"
  kill -TERM "$PID"
  # The server must stop and exit by itself within 10 s.
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then echo "server $variant did not exit after SIGTERM" >&2; kill -KILL "$PID"; fi
  wait "$PID" 2>/dev/null || true
  PID=""
  rm -f "$OUT"
  OUT=""
}

printf '| %-8s | %12s | %8s | %8s |\n' server 'req/s' p50 p99
printf '|----------|--------------|----------|----------|\n'
for variant in fastify node fastify pool fastify full; do run "$variant"; done
