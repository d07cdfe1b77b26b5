#!/usr/bin/env bash
# Runs the integration tests: every tests/integration/[0-9]*.sh, in name order, each in its
# own process with a time limit, against the real server (build/blockrep-source, or
# $BLOCKREP_SOURCE) and real clients (nbdinfo, nbdsh, nbdcopy, qemu-img, qemu-io, fio).
#
#   tests/integration/run.sh [PATTERN]    only tests whose file name contains PATTERN
#
# Prints "PASS name (Ns)" or "FAIL name (Ns)" plus the test's output per test, and ends with
# "integration: N passed, N failed". Writes "N M" (passed failed) to $RESULTS_FILE if set.
# Exit status is non-zero if any test failed (or none ran). TEST_TIMEOUT (seconds, default 120)
# bounds each test; a test that runs over is killed with its whole process group.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
pattern=${1:-}
limit=${TEST_TIMEOUT:-120}
passed=0
failed=0
failed_names=()

shopt -s nullglob
tests=()
for t in [0-9]*.sh; do
  [ -z "$pattern" ] || [[ $t == *"$pattern"* ]] || continue
  tests+=("$t")
done

if [ ${#tests[@]} -eq 0 ]; then
  echo "integration: no test matches '${pattern}'"
  echo "integration: 0 passed, 1 failed"
  [ -n "${RESULTS_FILE:-}" ] && echo "0 1" > "$RESULTS_FILE"
  exit 1
fi

log=$(mktemp /tmp/blockrep-it-log.XXXXXX)
trap 'rm -f "$log"' EXIT

for t in "${tests[@]}"; do
  name=${t%.sh}
  start=$SECONDS
  # timeout puts the test in its own process group and signals all of it on expiry
  # (the server included); -k: SIGKILL 10 s later if anything ignores SIGTERM.
  timeout -k 10 "$limit" bash "./$t" > "$log" 2>&1 < /dev/null
  rc=$?
  took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    echo "PASS $name (${took}s)"
    passed=$((passed + 1))
  else
    case $rc in
      124|137) why="timed out after ${limit}s" ;;
      *) why="exit $rc" ;;
    esac
    echo "FAIL $name (${took}s, $why)"
    sed 's/^/    /' "$log"
    failed=$((failed + 1))
    failed_names+=("$name")
  fi
done

[ "$failed" -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "integration: $passed passed, $failed failed"
[ -n "${RESULTS_FILE:-}" ] && echo "$passed $failed" > "$RESULTS_FILE"
[ "$failed" -eq 0 ]
