#!/usr/bin/env bash
# With no target listening, the source retries after 1, 2, 4, 8, 10, then every 30 retry
# units: with --retry-unit 100ms its log announces "retry N in M ms" with M = 100, 200, 400,
# 800, 1000, 3000, 3000 for N = 1 to 7 (the logged schedule, not measured times), status
# shows the disk disconnected with the next retry due; once a target listens, the next retry
# connects and the disk becomes protected.
. "$(dirname "$0")/../lib/common.sh"
RETRY_UNIT=100ms  # REPL_ARGS passes it as --retry-unit
. "$(dirname "$0")/../lib/repl.sh"

expected="100 200 400 800 1000 3000 3000"
make_disk "$T/disk.img" 16M
# Nothing listens on $TPORT: every attempt is refused at once.
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"

# The seventh failure comes after 100+200+400+800+1000+3000 ms = 5.5 s of waits.
deadline=$((SECONDS + 30))
until [ "$(grep -c 'retry [0-9]* in [0-9]* ms' "$SOURCE_LOG")" -ge 7 ]; do
  [ $SECONDS -lt $deadline ] || fail "fewer than 7 retries logged in 30 s"
  sleep 0.1
done
grep 'retry [0-9]* in [0-9]* ms' "$SOURCE_LOG" | head -n 3
numbers=$(grep -o 'retry [0-9]* in [0-9]* ms' "$SOURCE_LOG" | head -n 7 | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')
delays=$(grep -o 'retry [0-9]* in [0-9]* ms' "$SOURCE_LOG" | head -n 7 | awk '{print $4}' | tr '\n' ' ' | sed 's/ $//')
echo "retries: $numbers; delays (ms): $delays"
[ "$numbers" = "1 2 3 4 5 6 7" ] || fail "retries numbered '$numbers', expected 1 to 7 in order"
[ "$delays" = "$expected" ] || fail "retry delays '$delays' ms, expected '$expected'"
grep -q "refused\|Connection refused" "$SOURCE_LOG" || fail "the log does not say why it retries"

# Status: disconnected, the error, and a retry due within the current delay (3000 ms).
json=$(status_json "$STATE")
state=$(_json_field "$json" disks vm1 state)
retry_in=$(_json_field "$json" disks vm1 retry_in_ms)
failures=$(_json_field "$json" disks vm1 failures_in_row)
last_error=$(_json_field "$json" disks vm1 last_error)
echo "status: $state, failures in a row $failures, next retry in ${retry_in:-?} ms: $last_error"
case $state in disconnected|connecting) ;; *) fail "state $state while no target listens" ;; esac
[ "$failures" -ge 7 ] || fail "failures_in_row $failures after 7 logged retries"
[ -n "$last_error" ] || fail "status shows no last_error"
[ -z "$retry_in" ] || [ "$retry_in" -le 3000 ] || fail "retry_in_ms $retry_in exceeds the 30-unit delay"
[ "$(_json_field "$json" disks vm1 connect_attempts)" -ge 7 ] || fail "fewer than 7 connection attempts"

# A target appears: the next retry (at most 30 units later) connects.
start_target
wait_disk_state vm1 protected 15
[ "$(disk_field vm1 failures_in_row)" = 0 ] || fail "failures_in_row not reset after connecting"
attempts=$(disk_field vm1 connect_attempts)
stop_source
stop_target
pass "retries 1-7 logged after $delays ms (schedule 1,2,4,8,10,30,30 x 100 ms); protected on attempt $attempts once the target listened"
