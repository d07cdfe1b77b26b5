#!/usr/bin/env bash
# A source killed -9 in the middle of the stream loses nothing: while fio (nbd engine) writes
# faster than a --bandwidth-limit lets the source ship, so the target lags behind, the
# source is killed -9 mid-stream; restarted with the same arguments it recovers its journal
# and resumes in delta mode from exactly the seq after the target's last durable one,
# shipping the backlog it had not sent (no resync); more writes follow; then drain, verify
# equal, and fio verifies (verify=crc32c) the jobs that ran to completion before the kill
# and after the restart through the source's export.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 256M
src_args=(--disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}" --bandwidth-limit 8M)
start_target
start_source "${src_args[@]}"
wait_disk_state vm1 protected

# fio_job NAME OFFSET SEED [ARGS]: 24 MiB of random writes that fio can verify later.
fio_job() {
  local name=$1 offset=$2 seed=$3
  shift 3
  fio --name="$name" --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bssplit=4k/50:64k/50 \
      --offset="$offset" --size=24M --iodepth=8 --verify=crc32c --verify_state_save=0 \
      --randseed="$seed" --output-format=terse "$@"
}
# A (verified later) and B (killed with the source) write 12 MiB/s together; the source
# ships at most 8 MiB/s, so a backlog builds up.
fio_job before 16M 961 --do_verify=0 --rate=8m > "$T/fio-a.out" 2>&1 &
a_pid=$!
track_pid "$a_pid"
fio --name=killed --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bs=16k --offset=128M --size=64M \
    --iodepth=8 --rate=4m --refill_buffers --time_based --runtime=60 --randseed=962 --output-format=terse \
    > "$T/fio-b.out" 2>&1 &
b_pid=$!
track_pid "$b_pid"
wait "$a_pid" || { cat "$T/fio-a.out"; fail "fio job A failed"; }
alive "$b_pid" || { cat "$T/fio-b.out"; fail "fio job B ended before the kill"; }

json=$(status_json "$STATE")
acked=$(_json_field "$json" disks vm1 acked_seq)
next=$(_json_field "$json" disks vm1 next_seq)
state=$(_json_field "$json" disks vm1 state)
[ "$state" = protected ] || fail "state $state before the kill"
[ $((next - 1 - acked)) -ge 100 ] || fail "no backlog to kill the source in the middle of: acked $acked, next $next"
kill9_source
reap_client "$b_pid"

# The target keeps what it made durable; its session with the dead source ends.
deadline=$((SECONDS + 15))
until [ "$(replica_field vm1 connected)" = false ]; do
  [ $SECONDS -lt $deadline ] || fail "the target still holds the dead source's session after 15 s"
  sleep 0.1
done
durable=$(replica_field vm1 durable_through)
echo "killed with seqs $acked acked of $((next - 1)); the target holds seq $durable"
[ "$durable" -ge "$acked" ] || fail "the target holds seq $durable, but had acknowledged $acked"

start_source "${src_args[@]}"
deadline=$((SECONDS + 20))
until grep -q "replicating to .*from seq" "$SOURCE_LOG"; do
  [ $SECONDS -lt $deadline ] || fail "the restarted source did not connect within 20 s"
  sleep 0.1
done
grep "replicating to" "$SOURCE_LOG"
resumed=$(grep -o "delta from seq [0-9]*" "$SOURCE_LOG" | awk '{print $NF}')
[ -n "$resumed" ] || fail "the restarted source did not resume in delta mode"
[ "$resumed" = $((durable + 1)) ] || fail "the source resumed from seq $resumed, not from the target's $durable + 1"
# The backlog it had not shipped before the kill goes out now, before any new write.
drain vm1 60
backlog=$(disk_field vm1 record_bytes_sent)
echo "after the restart the source shipped $((backlog / 1024)) KiB of journaled writes"
[ "$backlog" -ge $((MiB)) ] || fail "the restarted source shipped only $backlog bytes: the backlog was lost"

fio_job after 64M 963 --do_verify=0 > "$T/fio-c.out" 2>&1 || { cat "$T/fio-c.out"; fail "fio job C failed"; }
drain vm1 60
verify_equal vm1 "$T/disk.img"
grep -q "resync" "$SOURCE_LOG" && fail "a resync ran: the journal should have carried the stream over"
fio_job before 16M 961 --verify_only > "$T/fio-av.out" 2>&1 ||
  { cat "$T/fio-av.out"; fail "fio does not verify job A (before the kill) through the export"; }
fio_job after 64M 963 --verify_only > "$T/fio-cv.out" 2>&1 ||
  { cat "$T/fio-cv.out"; fail "fio does not verify job C (after the restart) through the export"; }
stop_source
stop_target
pass "source killed with $((next - 1 - acked)) seqs unacknowledged; the target held seq $durable; resumed from seq $resumed (delta), shipped $((backlog / MiB)) MiB of backlog; equal; fio verifies both jobs"
