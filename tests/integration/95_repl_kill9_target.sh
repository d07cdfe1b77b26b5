#!/usr/bin/env bash
# A target killed -9 in the middle of the stream loses nothing: fio (nbd engine, random
# writes of mixed sizes, verify=crc32c) writes through blockrep-source while it replicates in
# delta mode; the target is killed -9, fio keeps writing (the source's acked seq stays put,
# its next seq grows), the target restarts and the source resumes in delta mode from exactly
# the seq after the target's last durable one (no resync); then drain, verify equal, and fio
# verifies every block it wrote through the source's export.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 256M
replicate_disk

# 48 MiB of random writes at 6 MiB/s: about 8 s, so the kill and the restart fall inside.
fio_args=(--name=load --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bssplit=4k/60:16k/25:64k/15
          --offset=32M --size=48M --iodepth=8 --verify=crc32c --verify_state_save=0 --randseed=95
          --output-format=terse)
fio "${fio_args[@]}" --do_verify=0 --rate=6m > "$T/fio.out" 2>&1 &
fio_pid=$!
track_pid "$fio_pid"

# Mid-stream: the target has acknowledged some of fio's writes.
acked_before=$(disk_field vm1 acked_seq)
deadline=$((SECONDS + 20))
until [ "$(disk_field vm1 acked_seq)" -ge $((acked_before + 200)) ]; do
  [ $SECONDS -lt $deadline ] || fail "the target did not acknowledge 200 writes in 20 s"
  sleep 0.1
done
kill9_target
acked_kill=$(disk_field vm1 acked_seq)
wait_disk_state vm1 disconnected 20

# Writes go on; the source journals them and the acked seq does not move.
next_kill=$(disk_field vm1 next_seq)
deadline=$((SECONDS + 20))
until [ "$(disk_field vm1 next_seq)" -ge $((next_kill + 200)) ]; do
  alive "$fio_pid" || fail "fio ended before writing on without the target"
  [ $SECONDS -lt $deadline ] || fail "fewer than 200 writes in 20 s without the target"
  sleep 0.1
done
[ "$(disk_field vm1 acked_seq)" = "$acked_kill" ] || fail "acked seq moved with the target dead"
alive "$fio_pid" || fail "fio finished before the target came back: nothing was written after the restart"

deltas=$(grep -c "delta from seq" "$SOURCE_LOG" || true)
start_target
durable=$(grep -o "replica vm1: in-sync, durable through source seq [0-9]*" "$TARGET_LOG" | tail -n 1 | awk '{print $NF}')
[ -n "$durable" ] || fail "the restarted target does not log its durable point"
[ "$durable" -ge "$acked_kill" ] || fail "the target restarted durable through $durable, but had acknowledged $acked_kill"
deadline=$((SECONDS + 20))
until [ "$(grep -c "delta from seq" "$SOURCE_LOG")" -gt "$deltas" ]; do
  [ $SECONDS -lt $deadline ] || fail "the source did not resume in delta mode within 20 s"
  sleep 0.1
done
resumed=$(grep -o "delta from seq [0-9]*" "$SOURCE_LOG" | tail -n 1 | awk '{print $NF}')
echo "killed with acked seq $acked_kill; the target restarted durable through $durable; the source resumed from seq $resumed"
[ "$resumed" = $((durable + 1)) ] || fail "the source resumed from seq $resumed, not from the target's durable seq $durable + 1"
grep -q "resync" "$SOURCE_LOG" && fail "a resync ran: the journal should have carried the stream over"

wait "$fio_pid" || { cat "$T/fio.out"; fail "fio failed"; }
written=$(awk -F';' '{print $47}' "$T/fio.out")  # KiB written (terse v3 field 47)
drain vm1 60
verify_equal vm1 "$T/disk.img"
fio "${fio_args[@]}" --verify_only > "$T/fio-v.out" 2>&1 ||
  { cat "$T/fio-v.out"; fail "fio does not verify its writes through the source's export"; }
next=$(disk_field vm1 next_seq)
stop_source
stop_target
pass "$((written / 1024)) MiB written; target killed at acked seq $acked_kill, restarted durable through $durable, source resumed from seq $resumed (delta, no resync); drained to seq $((next - 1)), equal, fio verifies"
