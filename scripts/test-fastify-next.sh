#!/usr/bin/env bash
# The suite against the newest Fastify 6 (a pre-release until 6.0.0 is out)
# instead of the lockfile's Fastify 5, with the lockfile left alone: the tree
# as it is (what git tracks or does not ignore) is copied to a temp folder,
# pnpm there overrides the fastify of every workspace package (each has its
# own: the root, fastify-pool, fastify-pool-cli, the examples), installs, and
# runs `pnpm typecheck` and `pnpm test` there. Fastify 6 needs Node 22 or later
# (Promise.withResolvers): put one first in PATH. Arguments go to pnpm test.
# The load tests (test/load) skip themselves: they measure the pool's load
# shedding, which runs before Fastify routes a request, they run with Fastify
# 5 on every Node already, and their timing bounds fail on a busy machine
# with either Fastify (2 of 9 beside other work, with 5 as with 6).
#   FASTIFY_NEXT=RANGE (default ^6.0.0-0: the newest 6, pre-release or not)
#   scripts/test-fastify-next.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RANGE="${FASTIFY_NEXT:-^6.0.0-0}"

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' \
  || { echo "Fastify 6 needs Node 22 or later; this is $(node --version)" >&2; exit 1; }
if grep -q '^overrides:' pnpm-workspace.yaml; then
  echo "pnpm-workspace.yaml has overrides of its own: merge fastify into them here" >&2; exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
  | tar --null -T - -cf - | tar -xf - -C "$WORK"
# The Node binaries .ci/run installs (git ignores them): the upgrade to another Node looks for .node24.
for d in .node22 .node24 .nodelatest; do if [ -d "$d" ]; then ln -s "$PWD/$d" "$WORK/$d"; fi; done
cd "$WORK"
printf '\n# scripts/test-fastify-next.sh: one Fastify for every package.\noverrides:\n  fastify: "%s"\n' "$RANGE" >> pnpm-workspace.yaml
# The store already holds all but Fastify 6 and what it adds; nothing new has a build script to allow.
pnpm install --no-frozen-lockfile --prefer-offline

# One copy, within the range, wherever the packages and the tests import it from.
copies="$(ls node_modules/.pnpm | grep -c '^fastify@' || true)"
[ "$copies" = 1 ] || { echo "$copies copies of fastify installed:" >&2; ls node_modules/.pnpm | grep '^fastify@' >&2; exit 1; }
version="$(cd packages/fastify-pool && node -e '
  const fastify = require.resolve("fastify")
  const semver = require(require.resolve("semver", { paths: [fastify] }))
  const { version } = require("fastify/package.json")
  if (!semver.satisfies(version, process.argv[1])) { console.error(`fastify ${version} installed, not ${process.argv[1]}`); process.exit(1) }
  console.log(version)' "$RANGE")"
echo "--- fastify $version in every package, on Node $(node --version)"
# Its typings against the packages, the tests and the examples (the tests run without them).
pnpm typecheck
FASTIFY_POOL_TEST_BUSY=1 pnpm test "$@"
