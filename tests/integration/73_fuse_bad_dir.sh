#!/usr/bin/env bash
# Bad --fuse directories: one that does not exist, one that is not empty, a regular file, and
# a directory that is already the live FUSE mount of another daemon. Each time the daemon must
# exit non-zero within 10 s with a message naming the directory, and mount nothing.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE"

expect_refused() {  # label, dir, message regex
  local label=$1 dir=$2 re=$3 rc=0
  timeout 10 "$BLOCKREP_SOURCE" --disk "disk=$T/disk.img" --nbd "unix:$T/other.sock" \
    --fuse "$dir" --state-dir "$T/state" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || fail "$label: daemon still running after 10 s (accepted --fuse $dir)"
  [ "$rc" -ne 0 ] || fail "$label: exit status 0, expected non-zero"
  grep -qF -- "$dir" "$T/out" || fail "$label: the message does not name $dir: $(tail -n 1 "$T/out")"
  grep -qE -- "$re" "$T/out" || fail "$label: the message does not match /$re/: $(tail -n 1 "$T/out")"
  echo "$label: exit $rc: $(grep -F -- "$dir" "$T/out" | tail -n 1)"
}

make_disk "$T/disk.img" 4M
expect_refused "missing directory" "$T/nope" "does not exist"
mkdir "$T/full" && echo x > "$T/full/somefile"
expect_refused "non-empty directory" "$T/full" "not empty"
[ "$(ls -A "$T/full")" = somefile ] || fail "the non-empty directory was changed"
echo x > "$T/file"
expect_refused "regular file" "$T/file" "not a directory"
findmnt -t fuse.blockrep -n | grep -qF "$T" && fail "a FUSE mount was left behind: $(findmnt -t fuse.blockrep)"

# A live mount: another daemon serves a second disk there.
make_disk "$T/live.img" 4M
mkdir "$T/live"
track_mount "$T/live"
start_source --disk "live=$T/live.img" --nbd "unix:$SOCK" --fuse "$T/live" --state-dir "$T/state-live"
expect_refused "live FUSE mount" "$T/live" "already a mount point"
[ "$(ls -A "$T/live")" = live ] || fail "the live mount changed: $(ls -A "$T/live")"
stop_source
pass
