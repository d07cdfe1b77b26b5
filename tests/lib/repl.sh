# shellcheck shell=bash
# Helpers for replication tests (tests/integration/9*_repl_*.sh). Source after common.sh:
#
#   . "$(dirname "$0")/../lib/common.sh"
#   . "$(dirname "$0")/../lib/repl.sh"
#
# It gives:
#   CERTS                  $T/certs: ca.crt, site-a.{crt,key} (the source), site-b.{crt,key}
#                          (the target), made by make_certs.sh; other-ca.crt and mallory.*
#                          signed by another CA
#   TSTATE                 the target's state directory ($T/target)
#   TPORT                  a free TCP port for the target; TADDR=$TARGET_HOST:$TPORT
#                          (TARGET_HOST: set it before sourcing; default 127.0.0.1)
#   start_target [ARGS]    blockrep-target for disk(s) given with --disk NAME=site-a (default
#                          vm1=site-a), waits until its control socket answers; with
#                          TARGET_NETNS set, in that network namespace (as SOURCE_NETNS
#                          does for start_source, common.sh)
#   stop_target / kill9_target
#   source_repl_args       the source's replication flags (--target, TLS, a fast retry unit)
#   status_json DIR        `blockrep status --json --state-dir DIR`
#   disk_field DISK KEY    a field of DISK in the source's status (e.g. state, acked_seq)
#   replica_field DISK KEY a field of DISK in the target's status
#   wait_disk_state DISK STATE [SECONDS]   until the source says DISK is in STATE
#   drain DISK [SECONDS]   blockrep drain, failing the test on error
#   verify_equal DISK      blockrep verify must say equal, and the image bytes must match
#   replica_img DISK       the target's replica image path
#   replicate_disk         start_target, then start_source serving $T/disk.img as vm1 on
#                          $SOCK with REPL_ARGS, and wait until vm1 is protected
#   prefill IMAGE SIZE [OFFSET]   random data (fio, psync) into IMAGE: SIZE bytes at OFFSET
#                          (fio size syntax, e.g. 32M), before the source serves it
# The EXIT trap also stops the target.

CERTS=$T/certs
TSTATE=$T/target
TARGET_PID=""
TARGET_LOG=$T/target.log
TPORT=$(free_tcp_port)
TADDR=${TARGET_HOST:-127.0.0.1}:$TPORT
RETRY_UNIT=${RETRY_UNIT:-100ms}

"$LIBDIR/make_certs.sh" "$CERTS" site-a site-b
CA_NAME=other "$LIBDIR/make_certs.sh" "$CERTS" mallory

_show_target_log() {
  if [ -s "$TARGET_LOG" ]; then
    echo "--- target stderr (last 15 lines of $TARGET_LOG) ---"
    tail -n 15 "$TARGET_LOG"
  fi
}
# The failure report shows both daemons' logs.
_show_log() {
  if [ -s "$SOURCE_LOG" ]; then
    echo "--- source stderr (last 25 lines of $SOURCE_LOG) ---"
    tail -n 25 "$SOURCE_LOG"
  fi
  _show_target_log
}

_stop_target_quietly() {
  if [ -n "$TARGET_PID" ] && alive "$TARGET_PID"; then
    kill -TERM "$TARGET_PID" 2>/dev/null || true
    wait_exit "$TARGET_PID" 10 || kill -KILL "$TARGET_PID" 2>/dev/null || true
  fi
}
trap '_stop_target_quietly; _cleanup' EXIT

# start_target [ARGS...]: extra ARGS go to blockrep-target; without a --disk among them the
# target takes vm1 from site-a. Appends to $TARGET_LOG.
start_target() {
  local args=("$@") deadline netns=()
  [ -z "${TARGET_NETNS:-}" ] || netns=(ip netns exec "$TARGET_NETNS")
  case " $* " in *" --disk "*) ;; *) args+=(--disk vm1=site-a) ;; esac
  "${netns[@]}" "$REPO/build/blockrep-target" --listen "$TADDR" --state-dir "$TSTATE" \
    --tls-cert "$CERTS/site-b.crt" --tls-key "$CERTS/site-b.key" --tls-ca "$CERTS/ca.crt" \
    "${args[@]}" 2>> "$TARGET_LOG" &
  TARGET_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT))
  until "$BLOCKREP_CLI" status --state-dir "$TSTATE" > /dev/null 2>&1; do
    alive "$TARGET_PID" || { TARGET_PID=""; fail "blockrep-target exited before it was ready"; }
    [ $SECONDS -lt "$deadline" ] || fail "blockrep-target not ready within ${READY_TIMEOUT}s"
    sleep 0.05
  done
}

stop_target() {
  [ -n "$TARGET_PID" ] || fail "stop_target: target not running"
  local rc=0
  kill -TERM "$TARGET_PID"
  wait_exit "$TARGET_PID" "$STOP_TIMEOUT" || { kill -KILL "$TARGET_PID"; fail "target ignored SIGTERM"; }
  wait "$TARGET_PID" || rc=$?
  TARGET_PID=""
  [ "$rc" -eq 0 ] || fail "target exited with status $rc after SIGTERM"
}

kill9_target() {
  [ -n "$TARGET_PID" ] || fail "kill9_target: target not running"
  kill -KILL "$TARGET_PID" 2>/dev/null || true
  wait_exit "$TARGET_PID" 10 || fail "target survived SIGKILL"
  wait "$TARGET_PID" 2>/dev/null || true
  TARGET_PID=""
}

# The source's replication flags, as an array: "${REPL_ARGS[@]}".
REPL_ARGS=(--target "$TADDR" --tls-cert "$CERTS/site-a.crt" --tls-key "$CERTS/site-a.key"
           --tls-ca "$CERTS/ca.crt" --retry-unit "$RETRY_UNIT")

status_json() { "$BLOCKREP_CLI" status --json --state-dir "$1"; }

# _json_field JSON LIST DISK KEY: the KEY of the entry named DISK in JSON[LIST] ("" if null).
_json_field() {
  /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.argv[1])
for d in j[sys.argv[2]]:
    if d["name"] == sys.argv[3]:
        v = d.get(sys.argv[4])
        print("" if v is None else (str(v).lower() if isinstance(v, bool) else v))
' "$1" "$2" "$3" "$4"
}

disk_field() { _json_field "$(status_json "$STATE")" disks "$1" "$2"; }
replica_field() { _json_field "$(status_json "$TSTATE")" replicas "$1" "$2"; }

# wait_disk_state DISK STATE [SECONDS]
wait_disk_state() {
  local deadline=$((SECONDS + ${3:-30})) s=""
  while :; do
    s=$(disk_field "$1" state 2>/dev/null || true)
    [ "$s" = "$2" ] && return 0
    [ $SECONDS -lt "$deadline" ] || fail "disk $1 not $2 within ${3:-30}s (state: $s; $(disk_field "$1" detail))"
    sleep 0.1
  done
}

drain() {
  local out
  out=$("$BLOCKREP_CLI" drain "$1" --timeout "${2:-60}" --state-dir "$STATE" 2>&1) || { echo "$out"; fail "blockrep drain $1 failed"; }
  echo "$out"
}

replica_img() { echo "$TSTATE/replicas/$1/replica.img"; }

replicate_disk() {
  start_target
  start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
  wait_disk_state vm1 protected 30
}

prefill() {
  fio --name=prefill --ioengine=psync --filename="$1" --rw=write --bs=1m --size="$2" \
      --offset="${3:-0}" --randrepeat=0 --refill_buffers --output-format=terse > /dev/null ||
    fail "fio could not prefill $1"
}

# verify_equal DISK SOURCE_IMAGE: blockrep verify says equal, and the bytes are the same.
verify_equal() {
  local out rc=0
  out=$("$BLOCKREP_CLI" verify "$1" --state-dir "$STATE" 2>&1) || rc=$?
  echo "$out" | head -n 5
  [ "$rc" -eq 0 ] || fail "blockrep verify $1: the replica differs (exit $rc)"
  cmp "$2" "$(replica_img "$1")" || fail "replica image of $1 differs from $2"
}
