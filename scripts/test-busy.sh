#!/usr/bin/env bash
# The whole test suite with the machine busy: BURNERS processes (default 2,
# one per core on the 2-core machines we run on) spin the CPU beside `pnpm
# test`, as a shared CI host or a developer's laptop under load would. The
# burners are killed when the run ends, however it ends. Exit code: the suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
burners=()
stop_burners () { for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_burners EXIT
for _ in $(seq "${BURNERS:-2}"); do
  # Bounded: a burner outlives nothing, even if this script is killed with SIGKILL.
  timeout 3600 node -e 'for (;;) {}' &
  burners+=("$!")
done
echo "--- pnpm test beside ${#burners[@]} CPU-burning processes"
# The load tests (test/load) measure latency and goodput: they skip themselves here.
FASTIFY_POOL_TEST_BUSY=1 pnpm test "$@"
