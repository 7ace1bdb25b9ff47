#!/usr/bin/env bash
# The whole test command (README: `npm test`): typecheck + build, lint, then
# every test file on Node's own runner, the S3 suite included. A local S3
# server (Ceph RGW) is started when none answers, and stopped afterwards if
# this script started it. FLOE_SKIP_S3=1 is an explicit opt-out that prints
# a warning; CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== build (tsc, strict)"
rm -rf dist   # no stale compiled tests from deleted sources
npx tsc -p tsconfig.json
echo "== lint (eslint + typescript-eslint)"
npx eslint .

started_s3=0
cleanup() { if ((started_s3)); then bash scripts/s3-local.sh stop || true; fi; }
trap cleanup EXIT
if [[ ${FLOE_SKIP_S3:-} == 1 ]]; then
  echo "WARNING: FLOE_SKIP_S3=1 — the S3 suite will NOT run against a real server" >&2
else
  if [[ -z ${FLOE_S3_ENDPOINT:-} ]]; then
    # Stop it afterwards only if it was not already running.
    if ! bash scripts/s3-local.sh status >/dev/null 2>&1; then started_s3=1; fi
    # Not eval "$(...)": that would hide a failed start (set -e sees eval's 0).
    s3_env=$(bash scripts/s3-local.sh start)
    eval "$s3_env"
    export FLOE_S3_ENDPOINT=$S3_ENDPOINT FLOE_S3_BUCKET=$BUCKET
  fi
fi

echo "== tests"
files=$(find dist/test -name '*.test.js' | sort)
# shellcheck disable=SC2086
node --test --test-concurrency="${FLOE_TEST_CONCURRENCY:-2}" ${FLOE_TEST_ARGS:-} $files
