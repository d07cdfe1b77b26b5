#!/usr/bin/env bash
# A journal record that no longer verifies is never shipped; the disk resyncs instead: with
# the target stopped, 4 KiB of 'A' is written at 8 MiB through NBD (between two other
# writes), `blockrep journal dump --json` locates its record, and one byte of its payload is
# flipped in the segment file (dd conv=notrunc). When the target starts, the source reports
# the bad checksum naming the segment, the offset and the seq, marks the disk for resync,
# and the resync repairs the replica from the disk: the replica ends equal to the disk, and
# the corrupted 4 KiB pattern appears in none of the target's files (replica image, target
# journal), while the intact pattern reached the replica.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 64M
replicate_disk
stop_target

nbdsh_py "$(uri vm1)" <<'PY'
h.pwrite(b"B" * 4096, 4 << 20)
h.pwrite(b"A" * 4096, 8 << 20)
h.pwrite(b"C" * 4096, 12 << 20)
PY

"$BLOCKREP_CLI" journal dump --state-dir "$STATE" --disk vm1 --json > "$T/dump.json"
read -r seq segment file_offset < <(/usr/bin/python3 -c '
import json, sys
recs = [r for r in json.load(open(sys.argv[1]))["records"]
        if r["kind"] == "write" and r["offset"] == 8 << 20 and r["length"] == 4096]
assert len(recs) == 1, recs
r = recs[0]
print(r["seq"], r["segment"], r["file_offset"])
' "$T/dump.json") || fail "the journal dump does not show the record of the write at 8 MiB"
seg_path=$STATE/disks/vm1/journal/$segment
echo "the write at 8 MiB is seq $seq in $segment at offset $file_offset"

# The record's payload follows its 64-byte header; byte 100 of it becomes 'a'.
flip_at=$((file_offset + 64 + 100))
[ "$(dd if="$seg_path" bs=1 skip="$flip_at" count=1 status=none)" = A ] || fail "no 'A' where the payload should be"
printf a | dd of="$seg_path" bs=1 seek="$flip_at" conv=notrunc status=none
/usr/bin/python3 -c 'import sys; open(sys.argv[1], "wb").write(b"A" * 100 + b"a" + b"A" * 3995)' "$T/corrupt.pat"
/usr/bin/python3 -c 'import sys; open(sys.argv[1], "wb").write(b"A" * 4096)' "$T/intact.pat"
# grep -c: lines holding the exact 4 KiB pattern (the files are binary: -a).
count() { grep -a -c -F -f "$1" "$2" || true; }
[ "$(count "$T/corrupt.pat" "$seg_path")" = 1 ] || fail "the corrupted pattern is not in the segment: the grep would see nothing"
if "$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk vm1 > "$T/jv.out" 2>&1; then
  cat "$T/jv.out"
  fail "journal verify accepts the flipped record"
fi

resyncs=$(disk_field vm1 resyncs_completed)
start_target
deadline=$((SECONDS + 30))
until grep -q "fails its checksum\|is missing or fails" "$SOURCE_LOG"; do
  [ $SECONDS -lt $deadline ] || fail "the source did not report the bad record within 30 s"
  sleep 0.1
done
report=$(grep -m 1 "fails its checksum\|is missing or fails" "$SOURCE_LOG")
echo "source: $report"
case $report in *"$segment"*"offset"*"seq $seq"*) ;; *) fail "the report does not name segment $segment, the offset and seq $seq" ;; esac
deadline=$((SECONDS + 30))
until [ "$(disk_field vm1 resyncs_completed)" -gt "$resyncs" ] && [ "$(disk_field vm1 state)" = protected ]; do
  [ $SECONDS -lt $deadline ] || fail "no resync completed within 30 s of the report ($(disk_field vm1 detail))"
  sleep 0.1
done
grep -q "resync begins" "$TARGET_LOG" || fail "the target saw no resync"
drain vm1
verify_equal vm1 "$T/disk.img"
reports=$(grep -c "^error: .*\(fails its checksum\|is missing or fails\)" "$SOURCE_LOG")
sessions=$(grep -c "replicating to .*from seq" "$SOURCE_LOG")
stop_source
stop_target

img=$(replica_img vm1)
in_image=$(count "$T/corrupt.pat" "$img")
in_journal=0
for f in "$TSTATE"/replicas/vm1/journal/*.hrl; do
  in_journal=$((in_journal + $(count "$T/corrupt.pat" "$f")))
done
intact=$(count "$T/intact.pat" "$img")
echo "corrupted pattern: $in_image in the replica image, $in_journal in the target journal; intact pattern in the replica image: $intact"
[ "$in_image" = 0 ] || fail "the corrupted record reached the replica image"
[ "$in_journal" = 0 ] || fail "the corrupted record reached the target journal"
[ "$intact" -ge 1 ] || fail "the intact 4 KiB of 'A' is not in the replica image"
[ "$reports" = 1 ] || fail "the corrupt record was reported $reports times: the source keeps tripping over it"
[ "$sessions" -le 4 ] || fail "$sessions sessions for one corrupt record: the source keeps tripping over it"
pass "seq $seq corrupted in $segment; reported $reports time(s) with segment/offset/seq; resync repaired it in $sessions sessions; corrupted pattern in 0 target files; replica equal"
