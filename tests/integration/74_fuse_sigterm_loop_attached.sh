#!/usr/bin/env bash
# SIGTERM while a loop device still holds the FUSE file open (the operator forgot
# `losetup -d`): the daemon must still exit 0, log a warning naming the file and the loop
# device, and leave DIR free (the mount detached lazily, DIR an empty directory again). What
# was written through the loop device before the signal is in the backing file, and the loop
# device's I/O fails afterwards instead of hanging.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE and losetup"
make_disk "$T/disk.img" 16M
mkdir "$T/fuse"
track_mount "$T/fuse"
start_source --disk "disk=$T/disk.img" --nbd "unix:$SOCK" --fuse "$T/fuse" --state-dir "$T/state"

LOOP=$(losetup --find --show "$T/fuse/disk") || fail "losetup on the FUSE file failed"
track_loop "$LOOP"
head -c $((1048576 + 4096)) /dev/urandom > "$T/data.bin"
dd if="$T/data.bin" of="$LOOP" bs=4096 seek=256 oflag=direct conv=fsync status=none ||
  fail "writing through the loop device failed"

stop_source
grep -F "still open" "$SOURCE_LOG" | grep -F "$T/fuse/disk" | grep -qF "$LOOP" ||
  fail "no warning naming $T/fuse/disk and $LOOP: $(grep -i warning "$SOURCE_LOG" | tail -n 1)"
findmnt -M "$T/fuse" > /dev/null && fail "$T/fuse is still a mount point: $(findmnt -M "$T/fuse")"
[ -z "$(ls -A "$T/fuse")" ] || fail "$T/fuse is not an empty directory again"
cmp -n $((1048576 + 4096)) -i 0:$((256 * 4096)) "$T/data.bin" "$T/disk.img" ||
  fail "what was written through the loop device is not in the backing file"
timeout 10 dd if="$LOOP" of=/dev/null bs=4096 count=1 skip=4000 iflag=direct status=none 2>/dev/null &&
  fail "the loop device still reads after the daemon stopped"
rc=0
timeout 10 dd if="$LOOP" of=/dev/null bs=4096 count=1 skip=4000 iflag=direct status=none 2>/dev/null || rc=$?
[ "$rc" -ne 124 ] || fail "a read from the loop device hangs after the daemon stopped"
pass
