#!/usr/bin/env bash
# A journal that overflows while the target is away leads to a resync of just the changed
# blocks: with --journal-max-bytes 8M on a 256 MiB disk, 4 MiB is replicated, the target
# is stopped, and 12 MiB of 4 KiB random writes spread over the whole disk go past the
# budget (state.json says mode "bitmap", status says resync_required); when the target
# comes back a resync runs (the logs say so) and ends "protected" with the replica equal,
# and the data it sent is about the 12 MiB changed, not whole chunks (every 1 MiB chunk of
# the disk was touched) nor the disk.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 256M
start_target
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}" --journal-max-bytes 8M
wait_disk_state vm1 protected
# (Within the budget: a burst of more than 8 MiB would overflow it even with the target there.)
fio --name=first --ioengine=nbd --uri="$(uri vm1)" --rw=write --bs=1m --size=4M --iodepth=4 \
    --refill_buffers --output-format=terse > "$T/fio1.out" 2>&1 || { cat "$T/fio1.out"; fail "fio (first 4 MiB) failed"; }
drain vm1
[ "$(state_field vm1 mode)" = journaling ] || fail "the disk left journaling before the overflow"
stop_target

# 3072 random 4 KiB writes (each block once) over the whole disk.
written=$((12 * MiB))
fio --name=spread --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bs=4k --size=256M \
    --io_size=$written --iodepth=8 --refill_buffers --randseed=99 --output-format=terse \
    > "$T/fio2.out" 2>&1 || { cat "$T/fio2.out"; fail "fio (spread writes) failed"; }
[ "$(awk -F';' '$1 == 3 {print $47}' "$T/fio2.out")" = $((written / 1024)) ] || { cat "$T/fio2.out"; fail "fio did not write $written bytes"; }
mode=$(state_field vm1 mode)
required=$(disk_field vm1 resync_required)
echo "after $((written / MiB)) MiB with an 8 MiB journal: state.json mode $mode, resync_required $required; $(state_field vm1 reason)"
[ "$mode" = bitmap ] || fail "state.json says mode $mode after writing past the journal budget"
[ "$required" = true ] || fail "status does not say resync_required"

# Watch the source's state while the target comes back.
( while :; do disk_field vm1 state 2>/dev/null || true; sleep 0.02; done ) > "$T/states.txt" &
watch_pid=$!
track_pid "$watch_pid"
start_target
deadline=$((SECONDS + 60))
until grep -q "resync complete" "$SOURCE_LOG" && [ "$(disk_field vm1 state)" = protected ]; do
  [ $SECONDS -lt $deadline ] || fail "no completed resync within 60 s ($(disk_field vm1 detail))"
  sleep 0.1
done
kill "$watch_pid"
wait "$watch_pid" 2>/dev/null || true
seen=$(sort -u "$T/states.txt" | paste -sd, -)
echo "states seen: $seen"
grep -q "resync begins" "$TARGET_LOG" || fail "the target's log shows no resync"
grep -q "resync of [0-9]* regions" "$SOURCE_LOG" || fail "the source's log does not say it resyncs the bitmap's regions"
drain vm1
verify_equal vm1 "$T/disk.img"
sent=$(disk_field vm1 sync_bytes_sent)
[ "$(disk_field vm1 resync_required)" = false ] || fail "resync_required after the resync"
[ "$(state_field vm1 mode)" = journaling ] || fail "state.json mode $(state_field vm1 mode) after the resync"
echo "the resync sent $sent bytes for $written bytes written"
[ "$sent" -le $((written * 11 / 10 + MiB)) ] || fail "the resync sent $sent bytes for $written bytes changed"
[ "$sent" -ge $((written * 9 / 10)) ] || fail "the resync sent only $sent bytes for $written bytes changed"
stop_source
stop_target
pass "8 MiB journal overflowed by $((written / MiB)) MiB of spread writes -> bitmap; resync (states: $seen) sent $((sent / 1024)) KiB for $((written / 1024)) KiB changed; equal"
