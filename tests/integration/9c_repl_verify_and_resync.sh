#!/usr/bin/env bash
# `blockrep verify` finds exactly the blocks of a replica changed behind the target's back,
# and `blockrep resync` repairs just those: after an initial copy of 32 MiB of data, four
# ranges of the replica image are changed with dd while the target runs (one byte, 4 KiB,
# 12 KiB spanning blocks, and 4 KiB in a hole of the disk), as a stray write or a bad disk
# would; `blockrep verify vm1` exits 1 and lists exactly those ranges widened to whole 4 KiB
# blocks; `blockrep resync vm1` compares every block and sends only the differing ones (bytes
# sent = the changed data blocks, not the disk), and verify then exits 0. (A change made
# while the target is stopped is found by the target itself: 9f.)
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

KiB=1024
MiB=$((1 << 20))
make_disk "$T/disk.img" 128M
prefill "$T/disk.img" 32M
replicate_disk
drain vm1
out=$("$BLOCKREP_CLI" verify vm1 --state-dir "$STATE") || fail "verify before any change: $out"

# change OFFSET BYTES: overwrite the replica's bytes there with 0x5a.
img=$(replica_img vm1)
change() {
  head -c "$2" /dev/zero | tr '\0' 'Z' |
    dd of="$img" bs=1 seek="$1" conv=notrunc status=none
}
change $((5 * MiB + 100)) 1                        # one byte    -> block [5 MiB, +4 KiB)
change $((9 * MiB + 8 * KiB)) $((4 * KiB))         # one block   -> [9 MiB + 8 KiB, +4 KiB)
change $((20 * MiB + 2 * KiB)) $((10 * KiB))       # 10 KiB over three blocks -> [20 MiB, +12 KiB)
change $((100 * MiB)) $((4 * KiB))                 # in a hole of the disk (zero there)
expected="offset $((5 * MiB)) length 4096
offset $((9 * MiB + 8 * KiB)) length 4096
offset $((20 * MiB)) length 12288
offset $((100 * MiB)) length 4096"
changed_data=$((4 + 4 + 12))  # KiB of changed blocks where the disk holds data
changed=$((changed_data + 4)) # KiB of changed blocks in all
sync "$img"

rc=0
out=$("$BLOCKREP_CLI" verify vm1 --state-dir "$STATE") || rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "verify exited $rc with a replica changed by hand (expected 1)"
echo "$out" | head -n 1 | grep -q "differs from its replica: .* in 4 range(s)" || fail "verify's summary is not 4 ranges: $out"
listed=$(echo "$out" | grep "^  offset" | sed 's/^  //')
[ "$listed" = "$expected" ] || fail "verify listed
$listed
expected
$expected"
differing=$("$BLOCKREP_CLI" verify vm1 --json --state-dir "$STATE" |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["differing_bytes"])')
[ "$differing" = $((changed * KiB)) ] || fail "verify --json says $differing differing bytes, expected $((changed * KiB))"

before=$(disk_field vm1 resyncs_completed)
"$BLOCKREP_CLI" resync vm1 --state-dir "$STATE" | grep -q "resync started" || fail "resync did not start"
deadline=$((SECONDS + 60))
until [ "$(disk_field vm1 resyncs_completed)" -gt "$before" ] && [ "$(disk_field vm1 state)" = protected ]; do
  [ $SECONDS -lt $deadline ] || fail "the resync did not complete in 60 s ($(disk_field vm1 detail))"
  sleep 0.1
done
sent=$(disk_field vm1 sync_bytes_sent)
echo "the resync sent $sent bytes of data for $changed KiB of changed blocks ($changed_data KiB where the disk holds data; the hole is sent as a zero range)"
[ "$sent" = $((changed_data * KiB)) ] || fail "the resync sent $sent bytes, expected the $((changed_data * KiB)) bytes of changed data blocks"
grep -q "resync begins" "$TARGET_LOG" || fail "the target saw no resync"
drain vm1
out=$("$BLOCKREP_CLI" verify vm1 --state-dir "$STATE") || fail "verify after the resync: $out"
echo "$out"
verify_equal vm1 "$T/disk.img" > /dev/null
stop_source
stop_target
pass "verify listed exactly the 4 changed ranges ($changed KiB in 4 KiB blocks, exit 1); resync sent $sent bytes (not $((128 * MiB))); verify exits 0 after"
