#!/usr/bin/env bash
# A daemon killed with SIGKILL leaves its FUSE mount behind, stale ("Transport endpoint is not
# connected"). Started again with the same --fuse DIR, the daemon must detach the stale mount
# (and log that it did), come up, and serve the file again with what was written before the
# kill.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE"
make_disk "$T/disk.img" 16M
mkdir "$T/fuse"
track_mount "$T/fuse"
ARGS=(--disk "disk=$T/disk.img" --nbd "unix:$SOCK" --fuse "$T/fuse" --state-dir "$T/state")
start_source "${ARGS[@]}"

head -c $((2 * 1048576 + 123)) /dev/urandom > "$T/data.bin"
dd if="$T/data.bin" of="$T/fuse/disk" bs=1M seek=3 conv=notrunc,fsync status=none ||
  fail "writing through FUSE failed"

kill -KILL "$SOURCE_PID"
wait "$SOURCE_PID" 2>/dev/null || true
SOURCE_PID=""
is_fuse_mount "$T/fuse" || fail "no FUSE mount left behind on $T/fuse after SIGKILL"
# A look that reaches the (dead) daemon fails; coreutils' stat asks it unless the kernel still
# has the root's attributes cached, ls always does.
out="$(stat "$T/fuse" 2>&1 || true) / $(ls "$T/fuse" 2>&1 || true)"
echo "after SIGKILL: $out"
echo "$out" | grep -q "Transport endpoint is not connected" || fail "$T/fuse is not stale after SIGKILL: $out"

start_source "${ARGS[@]}"
grep -q "stale FUSE mount" "$SOURCE_LOG" || fail "the daemon did not log that it detached the stale mount"
is_fuse_mount "$T/fuse" || fail "$T/fuse is not a FUSE mount after the restart"
[ "$(grep -c ' fuse.blockrep ' /proc/self/mountinfo)" -ge 1 ] || fail "no fuse.blockrep mount"
[ "$(findmnt -n -M "$T/fuse" | wc -l)" -eq 1 ] || fail "more than one mount on $T/fuse: $(findmnt -M "$T/fuse")"
dd if="$T/fuse/disk" of="$T/back.bin" bs=1M skip=3 iflag=count_bytes count=$((2 * 1048576 + 123)) status=none ||
  fail "reading the FUSE file after the restart failed"
cmp "$T/data.bin" "$T/back.bin" || fail "the FUSE file does not hold what was written before the kill"

stop_source
is_fuse_mount "$T/fuse" && fail "$T/fuse is still a FUSE mount after SIGTERM"
pass
