#!/usr/bin/env bash
# A replica restored by hand while the target is stopped is found and resynced on its own,
# sending only what differs: after an initial copy (32 MiB of data in a 128 MiB disk) the
# target is stopped and a copy of its replica image kept (a "backup"); a clean restart with
# the image untouched resumes the delta stream (no resync); 4 MiB more are written through
# NBD and replicated; the target is stopped again and the backup copied back over its image
# (same file, older content). Restarted, the target reports the replica "changed" with the
# reason, the source resyncs the whole disk by itself (no `blockrep resync`), sends exactly
# the 4 MiB that differ, and the replica ends equal to the disk.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 128M
prefill "$T/disk.img" 32M
replicate_disk
drain vm1
stop_target
img=$(replica_img vm1)
cp "$img" "$T/backup.img"

# Untouched: a clean restart goes on with the delta stream.
resyncs=$(disk_field vm1 resyncs_completed)
start_target
wait_disk_state vm1 protected 30
drain vm1
[ "$(replica_field vm1 state)" = in-sync ] || fail "an untouched replica is $(replica_field vm1 state) after a clean restart"
grep -q "changed" "$TARGET_LOG" && { cat "$TARGET_LOG"; fail "an untouched replica was reported changed"; }
[ "$(disk_field vm1 resyncs_completed)" = "$resyncs" ] || fail "a clean restart of the target caused a resync"
grep -q "resync begins" "$TARGET_LOG" && fail "a clean restart of the target began a resync"

fio --name=more --ioengine=nbd --uri="$(uri vm1)" --rw=write --bs=1m --offset=40M --size=4M \
    --refill_buffers --output-format=terse > "$T/fio.out" 2>&1 || { cat "$T/fio.out"; fail "fio could not write"; }
drain vm1
stop_target

# Restored by hand: the backup copied back over the image.
cp "$T/backup.img" "$img"
cmp -s "$T/disk.img" "$img" && fail "the restored image equals the disk: the test changes nothing"
start_target
deadline=$((SECONDS + 60))
until [ "$(disk_field vm1 resyncs_completed)" -gt "$resyncs" ] && [ "$(disk_field vm1 state)" = protected ]; do
  [ $SECONDS -lt $deadline ] || fail "no resync completed within 60 s of the restart ($(disk_field vm1 detail))"
  sleep 0.1
done
grep -q "replica vm1: .*replica.img changed while blockrep-target was stopped" "$TARGET_LOG" ||
  { cat "$TARGET_LOG"; fail "the target did not report the image changed while it was stopped"; }
grep -q "every region marked for resync: the target's replica changed outside blockrep-target" "$SOURCE_LOG" ||
  { cat "$SOURCE_LOG"; fail "the source did not give the target's reason for the resync"; }
sent=$(disk_field vm1 sync_bytes_sent)
echo "the resync sent $sent bytes of data for the 4 MiB written since the backup"
[ "$sent" = $((4 * MiB)) ] || fail "the resync sent $sent bytes, expected the $((4 * MiB)) bytes that differ"
drain vm1
verify_equal vm1 "$T/disk.img"
[ "$(replica_field vm1 state)" = in-sync ] || fail "the replica is $(replica_field vm1 state) after the resync"
stop_source
stop_target
pass "a clean restart resumed the delta stream; a replica restored by hand was reported changed, resynced by itself with $sent bytes sent (4 MiB differed), and ends equal"
