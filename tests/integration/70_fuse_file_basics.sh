#!/usr/bin/env bash
# The FUSE front door's file, with the daemon serving it over NBD at the same time. Checks:
# DIR holds exactly the disk's file, a regular file of the disk's size, mode 0600, owned by
# root; a dd/cmp round trip through it (4 MiB dd blocks: the kernel splits them into 1 MiB
# FUSE requests, and the daemon's stop line must report 1 MiB as the largest read and write);
# coherence both ways, each side reading before and after the other writes (a page cache on
# either side would show stale bytes); writes at or past the end fail with ENOSPC and one
# crossing it is cut short; truncating to another size, O_TRUNC, creating and removing files
# fail (truncating to the same size works); fallocate --punch-hole and --zero-range zero their
# range as NBD reads it, neighbours intact; a clean stop unmounts DIR.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE"
M=1048576
SIZE=$((32 * M))
make_disk "$T/disk.img" 32M
mkdir "$T/fuse"
track_mount "$T/fuse"
start_source --disk "disk=$T/disk.img" --nbd "unix:$SOCK" --fuse "$T/fuse" --state-dir "$T/state"
U=$(uri disk)
F=$T/fuse/disk
is_fuse_mount "$T/fuse" || fail "$T/fuse is not a fuse.blockrep mount after start"

# --- the file -------------------------------------------------------------------------------
[ "$(ls -A "$T/fuse")" = disk ] || fail "DIR holds '$(ls -A "$T/fuse" | tr '\n' ' ')', expected just 'disk'"
read -r kind size mode uid < <(stat -c '%F %s %a %u' "$F" | sed 's/regular file/regular_file/')
[ "$kind" = regular_file ] || fail "$F is a $kind, expected a regular file"
[ "$size" -eq "$SIZE" ] || fail "$F has size $size, expected $SIZE"
[ "$mode" = 600 ] || fail "$F has mode $mode, expected 600"
[ "$uid" -eq 0 ] || fail "$F is owned by uid $uid, expected root"

# --- round trip through FUSE ----------------------------------------------------------------
head -c $((12 * M + 4321)) /dev/urandom > "$T/a.bin"
dd if="$T/a.bin" of="$F" bs=4M seek=$M oflag=seek_bytes conv=notrunc,fsync status=none ||
  fail "dd into the FUSE file failed"
dd if="$F" of="$T/a.back" bs=4M skip=$M iflag=skip_bytes,count_bytes count=$((12 * M + 4321)) status=none
cmp "$T/a.bin" "$T/a.back" || fail "read back through FUSE differs from what dd wrote"

# --- coherence, both ways, on one open descriptor of the FUSE file ---------------------------
# Each side reads a range, the other side overwrites it, the first reads it again: a page
# cache on the FUSE side (no direct_io) would keep serving the first read's bytes.
head -c $((3 * M)) /dev/urandom > "$T/p1.bin"
head -c $((3 * M)) /dev/urandom > "$T/p2.bin"
head -c $((2 * M + 77)) /dev/urandom > "$T/p3.bin"
nbdsh_py "$U" <<PY || fail "FUSE and NBD disagree (see above)"
import os, sys
M = $M
def check(what, got, want):
    if got != want:
        i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        print("%s: first difference at byte %d of %d" % (what, i, len(want))); sys.exit(1)
a, p1, p2, p3 = (open("$T/%s.bin" % n, "rb").read() for n in ("a", "p1", "p2", "p3"))
check("NBD read of what dd wrote through FUSE", h.pread(len(a), M), a)
fd = os.open("$F", os.O_RDWR)
# FUSE writes, NBD reads before and after
h.pread(len(p1), 20 * M)
os.pwrite(fd, p1, 20 * M)
check("NBD read after a FUSE write", h.pread(len(p1), 20 * M), p1)
# NBD writes, FUSE reads before and after (aligned, then unaligned)
os.pread(fd, len(p2), 24 * M)
h.pwrite(p2, 24 * M)
check("FUSE read after an NBD write", os.pread(fd, len(p2), 24 * M), p2)
os.pread(fd, len(p3), 28 * M + 5)
h.pwrite(p3, 28 * M + 5)
check("unaligned FUSE read after an NBD write", os.pread(fd, len(p3), 28 * M + 5), p3)
os.close(fd)
PY
# an O_DSYNC write (FUA) lands too
dd if="$T/p1.bin" of="$F" bs=1M seek=8 count=1 oflag=dsync conv=notrunc status=none
cmp -n $M "$T/p1.bin" <(dd if="$F" bs=1M skip=8 count=1 status=none) || fail "O_DSYNC write did not land"

# --- the end of the disk ----------------------------------------------------------------------
out=$(dd if=/dev/zero of="$F" bs=4096 count=1 seek=$((SIZE / 4096)) conv=notrunc 2>&1) &&
  fail "a write at the end of the disk succeeded"
echo "$out" | grep -q "No space left on device" || fail "a write at the end failed with '$out', expected ENOSPC"
out=$(dd if=/dev/zero of="$F" bs=8192 count=1 seek=$((SIZE - 4096)) oflag=seek_bytes conv=notrunc 2>&1) &&
  fail "a write crossing the end of the disk succeeded"
echo "$out" | grep -q "4096 bytes" || fail "a write crossing the end should be cut to 4096 bytes: $out"
[ "$(dd if="$F" bs=4096 skip=$((SIZE / 4096)) 2>/dev/null | wc -c)" -eq 0 ] || fail "a read at the end returned data"
[ "$(stat -c %s "$F")" -eq "$SIZE" ] || fail "the file's size changed to $(stat -c %s "$F")"

# --- what a fixed set of fixed-size files refuses ---------------------------------------------
truncate -s "$SIZE" "$F" || fail "truncate to the disk's own size failed"
truncate -s 1M "$F" 2>/dev/null && fail "truncate to another size succeeded"
: 2>/dev/null > "$F" && fail "opening with O_TRUNC succeeded"
touch "$T/fuse/new" 2>/dev/null && fail "creating a file in DIR succeeded"
rm -f "$F" 2>/dev/null && fail "removing the disk's file succeeded"
mv "$F" "$T/fuse/other" 2>/dev/null && fail "renaming the disk's file succeeded"
[ "$(stat -c %s "$F")" -eq "$SIZE" ] || fail "the file's size changed to $(stat -c %s "$F")"

# --- fallocate -> trim and write-zeroes, as NBD sees it ---------------------------------------
head -c $((8 * M)) /dev/urandom > "$T/r.bin"
dd if="$T/r.bin" of="$F" bs=1M seek=1 conv=notrunc,fsync status=none
fallocate --punch-hole --offset $((2 * M)) --length $((M + 8192)) "$F" || fail "fallocate --punch-hole failed"
fallocate --zero-range --offset $((5 * M + 4096)) --length $((M + 512)) "$F" || fail "fallocate --zero-range failed"
fallocate --zero-range --keep-size --offset $((7 * M)) --length 4096 "$F" || fail "fallocate --zero-range --keep-size failed"
fallocate --offset 0 --length "$M" "$F" 2>/dev/null && fail "plain fallocate (allocate) succeeded, expected EOPNOTSUPP"
nbdsh_py "$U" <<PY || fail "fallocate through FUSE, read through NBD (see above)"
import sys
M = $M
want = bytearray(open("$T/r.bin", "rb").read())   # at 1 MiB on the disk
for off, n in ((2 * M, M + 8192), (5 * M + 4096, M + 512), (7 * M, 4096)):
    want[off - M:off - M + n] = bytes(n)
got = h.pread(len(want), M)
if got != bytes(want):
    i = next(i for i in range(len(want)) if got[i] != want[i])
    print("byte at disk offset %d is %d, expected %d" % (M + i, got[i], want[i])); sys.exit(1)
PY

stop_source
is_fuse_mount "$T/fuse" && fail "$T/fuse is still a FUSE mount after SIGTERM"
grep -q 'largest 1048576 bytes), .* writes (largest 1048576 bytes)' "$SOURCE_LOG" ||
  fail "FUSE requests did not reach 1 MiB: $(grep 'FUSE on' "$SOURCE_LOG" | tail -1)"
pass
