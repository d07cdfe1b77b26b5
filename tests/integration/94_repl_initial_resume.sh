#!/usr/bin/env bash
# An initial copy interrupted by a target killed -9 resumes from its durable cursor instead
# of starting over: a 256 MiB disk holding 128 MiB of random data is copied under a
# --bandwidth-limit (a few seconds); the target is killed -9 once its durable sync cursor
# has passed 48 MiB, and restarted: its log says "initial copy resumes at" a non-zero
# offset, the source resumes (mode initial-resume) and sends only what lies past that
# cursor, so the sync data of both sessions together stays well under twice the data (and
# the wire bytes too); the replica ends equal to the disk.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
data=$((128 * MiB))
make_disk "$T/disk.img" 256M
prefill "$T/disk.img" 128M
start_target
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}" --bandwidth-limit 32M
wait_disk_state vm1 initial-replication 10

deadline=$((SECONDS + 30))
until [ "$(replica_field vm1 sync_cursor)" -ge $((48 * MiB)) ]; do
  [ "$(replica_field vm1 state)" = initial-copy ] || fail "the copy finished (or failed) before the kill: $(replica_field vm1 state)"
  [ $SECONDS -lt $deadline ] || fail "the target's cursor did not pass 48 MiB in 30 s"
  sleep 0.05
done
kill9_target
# The first session is over once the source notices; its sync counter is final until the
# next session starts (which needs the target).
wait_disk_state vm1 disconnected 20
sent1=$(disk_field vm1 sync_bytes_sent)
[ "$(disk_field vm1 replica_state)" = initial-copy ] || fail "the source thinks the copy is over"

start_target
wait_disk_state vm1 protected 60
resumed_at=$(grep -o "initial copy resumes at .*" "$TARGET_LOG" | head -n 1 | sed 's/initial copy resumes at //')
echo "the target says: initial copy resumes at $resumed_at"
[ -n "$resumed_at" ] || fail "the target's log does not say the copy resumes"
case $resumed_at in 0\ *|"0.0 "*) fail "the copy resumed at offset 0: it restarted" ;; esac
grep -q "initial-resume from seq" "$SOURCE_LOG" || fail "the source did not resume the copy (mode initial-resume)"
grep -q "initial copy begins" "$TARGET_LOG" || fail "no initial copy began"
[ "$(grep -c "initial copy begins" "$TARGET_LOG")" = 1 ] || fail "the initial copy began afresh after the restart"

drain vm1
verify_equal vm1 "$T/disk.img"
sent2=$(disk_field vm1 sync_bytes_sent)
wire=$(disk_field vm1 wire_bytes_sent)
total=$((sent1 + sent2))
echo "sync data: $((sent1 / MiB)) MiB before the kill + $((sent2 / MiB)) MiB after = $((total / MiB)) MiB for $((data / MiB)) MiB of data; $((wire / MiB)) MiB on the wire"
# Restarting from 0 after 48 MiB would send at least 128 + 48 = 176 MiB.
[ "$sent2" -le $((data - 40 * MiB)) ] || fail "the second session sent $sent2 bytes: more than what lay past the cursor"
[ "$total" -le $((data * 5 / 4)) ] || fail "the copy sent $total bytes of sync data for $data bytes of data"
[ "$wire" -le $((data * 5 / 4 + 8 * MiB)) ] || fail "the copy put $wire bytes on the wire for $data bytes of data"
[ "$total" -ge "$data" ] || fail "the copy sent only $total bytes for $data bytes of data"
stop_source
stop_target
pass "killed at a durable cursor >= 48 MiB; resumed at $resumed_at; sync data $((sent1 / MiB)) + $((sent2 / MiB)) = $((total / MiB)) MiB, $((wire / MiB)) MiB on the wire, for $((data / MiB)) MiB of data; equal"
