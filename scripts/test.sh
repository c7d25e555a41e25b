#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), compiles dist/tsk, runs the
# unit tests beside the code and the end-to-end tests in tests/ (which build with dist/tsk as
# root and as an unprivileged user, against a real registry they start on 127.0.0.1).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
log=$(mktemp)
status=0
NO_COLOR=1 node_modules/.bin/deno test -A --parallel "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One plain summary line for CI: "N passed, N failed".
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
rm -f "$log"
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
if [[ -z "$summary" ]]; then echo "test.sh: no test summary found" >&2; exit 1; fi
exit $status
