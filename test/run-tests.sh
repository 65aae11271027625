#!/usr/bin/env bash
# The project's one test command (README): installs what the tests need, type-checks, runs jest,
# and ends with the plain line "N passed, N failed" computed from jest's JSON results.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi

# Services the integration tests start themselves (nats-server from Debian).
bash test/provision.sh || { echo "provisioning failed"; echo "0 passed, 1 failed"; exit 1; }

npx tsc -p tsconfig.json || { echo "build (tsc) failed"; echo "0 passed, 1 failed"; exit 1; }

mkdir -p .cache
results=.cache/jest-results.json
rm -f "$results"
NODE_OPTIONS=--experimental-vm-modules npx jest --ci --json --outputFile="$results" "$@"
status=$?

if [ ! -f "$results" ]; then
  echo "jest wrote no results"
  echo "0 passed, 1 failed"
  exit 1
fi
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const failedSuites = r.numFailedTestSuites - r.testResults.filter((s) => s.assertionResults.some((a) => a.status === "failed")).length;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + Math.max(0, failedSuites)} failed`);
' "$results"
if [ "$status" -ne 0 ]; then exit "$status"; fi
node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); process.exit(r.numTotalTests > 0 ? 0 : 1)' "$results"
