#!/usr/bin/env bash
# make test: runs every test stage and ends with one line, "N passed, N failed".
#   1. GoogleTest unit tests            build/unit_tests
#   2. the same under ASan+UBSan        build/asan/unit_tests
#   3. short libFuzzer runs             build/fuzz/nbd_fuzz, build/fuzz/repl_wire_fuzz
#                                       (FUZZ_SECONDS each, default 30)
#   4. integration tests                tests/integration/run.sh (real binaries, real clients)
# A stage that cannot run counts as failed. Exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
results=build/test-results
rm -rf "$results"
mkdir -p "$results"
passed=0
failed=0

count_gtest() {  # $1 json report -> "passed failed"
  /usr/bin/python3 - "$1" <<'PY' 2>/dev/null || echo "0 1"
import json, sys
r = json.load(open(sys.argv[1]))
print(r["tests"] - r["failures"] - r.get("disabled", 0), r["failures"])
PY
}

run_gtest() {  # $1 label, $2 binary
  local label=$1 bin=$2 json="$results/$1.json"
  echo "== $label: $bin"
  if [ ! -x "$bin" ]; then
    echo "$label: $bin is missing"
    failed=$((failed + 1))
    return
  fi
  "$bin" --gtest_brief=1 --gtest_output="json:$json" > "$results/$label.log" 2>&1
  local rc=$?
  tail -n 30 "$results/$label.log" | grep -E '^\[  (FAILED|PASSED)|Failure|ERROR|Sanitizer' || true
  local p f
  if [ -f "$json" ]; then read -r p f < <(count_gtest "$json"); else p=0 f=1; fi
  # A crash or sanitizer abort may leave the report short: count it as a failure.
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; cat "$results/$label.log" | tail -n 40; fi
  echo "$label: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

run_gtest unit build/unit_tests
run_gtest unit-asan build/asan/unit_tests

# run_fuzz NAME SECONDS: build/fuzz/NAME from its seed corpus tests/fuzz/NAME_corpus.
run_fuzz() {
  local name=$1 secs=$2 corpus="$results/$1-corpus"
  echo "== fuzz: build/fuzz/$name for $secs s"
  mkdir -p "$corpus"
  cp tests/fuzz/"$name"_corpus/* "$corpus/"
  if build/fuzz/"$name" -max_total_time="$secs" -print_final_stats=1 \
      -artifact_prefix="$results/$name-" "$corpus" > "$results/$name.log" 2>&1; then
    grep -E 'number_of_executed_units|new_units_added' "$results/$name.log" | sed 's/^/  /'
    echo "fuzz $name: 1 passed, 0 failed"
    passed=$((passed + 1))
  else
    tail -n 40 "$results/$name.log"
    echo "fuzz $name: 0 passed, 1 failed (crash input saved under $results/)"
    failed=$((failed + 1))
  fi
}
# The NBD handshake and request parser, and the replication protocol's decoders.
run_fuzz nbd_fuzz "${FUZZ_SECONDS:-30}"
run_fuzz repl_wire_fuzz "${FUZZ_SECONDS:-30}"

echo "== integration"
RESULTS_FILE="$PWD/$results/integration.counts" tests/integration/run.sh
if [ -f "$results/integration.counts" ]; then
  read -r p f < "$results/integration.counts"
else
  p=0 f=1
fi
passed=$((passed + p))
failed=$((failed + f))

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
