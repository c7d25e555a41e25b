#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), compiles dist/tsk, runs the
# unit tests beside the code and the end-to-end tests in tests/ (which build with dist/tsk as
# root and as an unprivileged user, against a real registry they start on 127.0.0.1).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
log=$(mktemp)
status=0
# The e2e harness's work dirs (~200 MB each) and unpacked images (tests/e2e/harness.ts): every
# test file must remove its own (stopEnv in an `after` hook).
# (Counted by name: dirs that appeared during the run and are still there; a concurrent run of
# another checkout on the same machine can add to the count.)
e2e_dirs() {
  find "${TMPDIR:-/tmp}" -maxdepth 1 \( -name 'tsk-e2e-*' -o -name 'tsk-oci-*' \) 2>/dev/null | sort
}
e2e_before=$(e2e_dirs)
NO_COLOR=1 node_modules/.bin/deno test -A --parallel "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
e2e_left=$(comm -13 <(printf '%s\n' "$e2e_before") <(e2e_dirs) | grep -c .)
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
ignored=0
if [[ "$summary" =~ \|\ ([0-9]+)\ ignored ]]; then ignored=${BASH_REMATCH[1]}; fi
# Ignored tests by name ("./file => name ... ignored" in parallel mode, "name ... ignored" else).
names=$(grep -E ' \.\.\. ignored \(' "$log" | sed -E 's/^ *(\.\/[^ ]+ => )?//; s/ \.\.\. ignored \(.*$//' | sort -u)
rm -f "$log"
echo
# One plain summary line for CI: "N passed, N failed" (", N skipped" when some were ignored).
echo "tests: ${passed:-0} passed, ${failed:-0} failed$([[ $ignored != 0 ]] && echo ", $ignored skipped")"
if (( e2e_left > 0 )); then
  echo "test.sh: warning: this run left $e2e_left ${TMPDIR:-/tmp}/tsk-e2e-* or tsk-oci-* dir(s) behind (a test file does not call stopEnv)"
fi
if [[ -z "$summary" ]]; then echo "test.sh: no test summary found" >&2; exit 1; fi
if [[ -n "$names" ]]; then
  echo "ignored:"
  sed 's/^/  /' <<<"$names"
fi
# CI runs as root (or with CI set): there, only the tests in tests/ignored_allowed.txt may be
# ignored; any other ignored test is a test that never ran, and fails the run.
# TSK_TEST_ALLOW_IGNORED=1 turns the check off (e.g. in a container without mount rights).
if [[ ( $(id -u) == 0 || -n "${CI:-}" ) && "${TSK_TEST_ALLOW_IGNORED:-}" != 1 && -n "$names" ]]; then
  allowed=$(grep -vE '^\s*(#|$)' tests/ignored_allowed.txt | sed -E 's/ # .*$//')
  bad=$(grep -vxF -f <(printf '%s\n' "$allowed") <<<"$names")
  if [[ -n "$bad" ]]; then
    echo "test.sh: these tests were ignored but must run here (see tests/ignored_allowed.txt):" >&2
    sed 's/^/  /' <<<"$bad" >&2
    [[ $status == 0 ]] && status=1
  fi
fi
exit $status
