#!/usr/bin/env bash
# ext4 on a loop device over the FUSE file, the way a host without an NBD client uses a
# protected disk: losetup on DIR/NAME, mkfs.ext4, mount, write several files (one of 6 MiB of
# random data) and record their sha256, sync, unmount, mount again and check every sha256,
# unmount, `fsck.ext4 -fn` finds nothing; the journal holds the writes (at least the 6 MiB
# file's worth of write records) and the disk equals the journal's view; detach the loop
# device, SIGTERM the daemon (exit 0) and DIR is no longer a FUSE mount but an empty
# directory again.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE, losetup and mount"
make_disk "$T/disk.img" 96M
mkdir "$T/fuse" "$T/ext4"
track_mount "$T/fuse"
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" --fuse "$T/fuse" --state-dir "$T/state"

LOOP=$(losetup --find --show "$T/fuse/vm1") || fail "losetup on the FUSE file failed"
track_loop "$LOOP"
track_mount "$T/ext4"
timeout 60 mkfs.ext4 -q -F "$LOOP" || fail "mkfs.ext4 on $LOOP failed"
mount "$LOOP" "$T/ext4" || fail "mounting the new ext4 on $LOOP failed"

head -c $((6 * 1048576)) /dev/urandom > "$T/ext4/random.bin"
echo "hello from blockrep" > "$T/ext4/hello.txt"
mkdir "$T/ext4/dir"
seq 1 200000 > "$T/ext4/dir/numbers.txt"
dd if=/dev/zero of="$T/ext4/dir/zeroes.bin" bs=64k count=40 status=none
(cd "$T/ext4" && find . -type f | sort | xargs sha256sum) > "$T/sums"
[ "$(wc -l < "$T/sums")" -eq 4 ] || fail "expected 4 files, sums has: $(cat "$T/sums")"
sync
umount "$T/ext4" || fail "unmounting the ext4 failed"

mount "$LOOP" "$T/ext4" || fail "mounting the ext4 again failed"
(cd "$T/ext4" && sha256sum --quiet -c "$T/sums") || fail "sha256 mismatch after remounting (see above)"
umount "$T/ext4" || fail "unmounting the ext4 the second time failed"

out=$(timeout 60 fsck.ext4 -fn "$LOOP" 2>&1) || fail "fsck.ext4 -fn found problems: $out"
"$BLOCKREP_CLI" journal dump --state-dir "$T/state" --disk vm1 --json > "$T/dump.json"
/usr/bin/python3 - "$T/dump.json" <<'PY' || fail "the journal does not hold the FUSE writes"
import json, sys
d = json.load(open(sys.argv[1]))
written = sum(r["length"] for r in d["records"] if r["kind"] == "write")
print("journal: %d write records, %d bytes" % (sum(r["kind"] == "write" for r in d["records"]), written))
sys.exit(0 if written >= 6 * 1048576 and d["corruption"] is None else 1)
PY
STATE=$T/state journal_verify vm1 "$T/disk.img"
losetup -d "$LOOP" || fail "losetup -d $LOOP failed"

stop_source
is_fuse_mount "$T/fuse" && fail "$T/fuse is still a FUSE mount after SIGTERM"
findmnt -M "$T/fuse" > /dev/null && fail "$T/fuse is still a mount point: $(findmnt -M "$T/fuse")"
[ -d "$T/fuse" ] && [ -z "$(ls -A "$T/fuse")" ] || fail "$T/fuse is not an empty directory again"
grep -q 'still open' "$SOURCE_LOG" && fail "the daemon found the file still open at SIGTERM: $(grep 'still open' "$SOURCE_LOG")"
pass
