#!/usr/bin/env bash
# A target whose file system fills up reports it as a transient error and loses nothing:
# the target's state directory is a 24 MiB tmpfs; 48 MiB of writes through NBD make the
# target run out of space (ENOSPC), the source's status shows a retry whose error names
# no-space / "No space left", the acknowledged point never moves back, and the writes stay
# in the source's journal; once the tmpfs grows (mount -o remount,size=...), the retries
# get through and the replica catches up: drain, verify equal.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
mkdir -p "$TSTATE"
mount -t tmpfs -o size=24M tmpfs "$TSTATE"
# The target first (it holds the mount), then the tmpfs, then the rest.
trap '_stop_target_quietly; umount "$TSTATE" 2>/dev/null || umount -l "$TSTATE" 2>/dev/null; _cleanup' EXIT

make_disk "$T/disk.img" 128M
replicate_disk

fio --name=fill --ioengine=nbd --uri="$(uri vm1)" --rw=write --bs=256k --size=48M --iodepth=4 \
    --rate=16m --refill_buffers --output-format=terse > "$T/fio.out" 2>&1 &
fio_pid=$!
track_pid "$fio_pid"
deadline=$((SECONDS + 40))
until disk_field vm1 last_error | grep -q "no-space\|No space left"; do
  [ $SECONDS -lt $deadline ] || fail "no no-space error within 40 s (last error: $(disk_field vm1 last_error); target: $(df -h "$TSTATE" | tail -n 1))"
  sleep 0.1
done
json=$(status_json "$STATE")
err=$(_json_field "$json" disks vm1 last_error)
acked_full=$(_json_field "$json" disks vm1 acked_seq)
durable_full=$(replica_field vm1 durable_through)
echo "source: $(_json_field "$json" disks vm1 state): $err"
echo "target full: $(df -h --output=used,size "$TSTATE" | tail -n 1); durable through $durable_full, source acked $acked_full"
[ "$acked_full" -le "$durable_full" ] || fail "the source counts seq $acked_full acknowledged, the target holds only $durable_full"
wait "$fio_pid" || { cat "$T/fio.out"; fail "fio failed: the source must go on accepting writes"; }

# Still full: the retries keep failing for want of space, and are retried.
failures=$(disk_field vm1 failures_in_row)
deadline=$((SECONDS + 20))
until [ "$(disk_field vm1 failures_in_row)" -gt "$failures" ] || [ "$(disk_field vm1 failures_in_row)" -ge 3 ]; do
  [ $SECONDS -lt $deadline ] || fail "no further retry while the target is full"
  sleep 0.1
done
alive "$TARGET_PID" || fail "the target died of a full file system"
[ "$(disk_field vm1 state)" != error ] || fail "no space was taken as fatal: $(disk_field vm1 error)"
next=$(disk_field vm1 next_seq)
echo "retries so far: $(disk_field vm1 failures_in_row) in a row; the source's journal holds seqs up to $((next - 1))"

mount -o remount,size=512M "$TSTATE"
drain vm1 60
durable_after=$(replica_field vm1 durable_through)
[ "$durable_after" -ge "$durable_full" ] || fail "the target's durable point moved back: $durable_full -> $durable_after"
[ "$durable_after" -ge $((next - 1)) ] || fail "the target holds seq $durable_after after the drain, the journal went to $((next - 1))"
verify_equal vm1 "$T/disk.img"
used=$(df --output=used -B1M "$TSTATE" | tail -n 1 | tr -d ' ')
stop_source
stop_target
pass "ENOSPC at durable seq $durable_full on a 24 MiB tmpfs: transient ($err); after growing it the replica caught up to seq $durable_after ($used MiB used); equal"
