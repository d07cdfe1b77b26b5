#!/usr/bin/env bash
# Fatal refusals by the target are not retried and say why: a disk the target is not
# configured for, a disk configured for another source identity, a disk of another
# generation than its replica, a disk whose protection was created afresh (another disk
# id), and a disk whose size no longer matches its replica. After the operator fixes the
# target's configuration, `blockrep resume` replicates.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

make_disk "$T/disk.img" 16M
expect_fatal() {  # CODE WORD: the source's error names CODE and WORD; one attempt only
  wait_disk_state vm1 error 20
  local err attempts
  err=$(disk_field vm1 error)
  echo "source says: $err"
  case $err in *"$1"*"$2"*) ;; *) fail "expected '$1' ... '$2' in the error: $err" ;; esac
  sleep 1  # 10 retry units
  attempts=$(disk_field vm1 connect_attempts)
  [ "$attempts" = 1 ] || fail "$1: $attempts connection attempts, expected 1 (fatal: no retry)"
}

# 1. unknown disk
start_target --disk other=site-a
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
expect_fatal unknown-disk "not configured"
stop_source
stop_target

# 2. identity not allowed
start_target --disk vm1=site-c
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
expect_fatal identity-not-allowed "site-c"
# The operator fixes the target, then resumes: replication starts.
stop_target
start_target --disk vm1=site-a
"$BLOCKREP_CLI" resume vm1 --state-dir "$STATE" > /dev/null
wait_disk_state vm1 protected 30
stop_source

# 3. generation mismatch: the source's disk moved on to generation 2 (what a failover and
# failback will do), the replica is of generation 1.
set_generation() {
  /usr/bin/python3 - "$STATE/disks/vm1/state.json" "$1" <<'PY'
import json, os, sys
path, gen = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    state = json.load(f)
state["generation"] = gen
with open(path + ".tmp", "w") as f:
    json.dump(state, f)
os.replace(path + ".tmp", path)
PY
}
set_generation 2
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
expect_fatal generation-mismatch "generation 1, the disk of generation 2"
stop_source
set_generation 1

# 4. disk id mismatch: the same disk protected afresh (new state directory, new disk id).
rm -rf "$STATE"
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
expect_fatal disk-id-mismatch "aside"
stop_source

# 5. size mismatch: the disk grew, the replica did not.
truncate -s 32M "$T/disk.img"
rm -rf "$STATE"  # a resized disk starts protection afresh on the source side
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
expect_fatal size-mismatch "aside"
stop_source
stop_target
pass "unknown disk, identity not allowed, generation, disk id and size mismatch: fatal, not retried, explained"
