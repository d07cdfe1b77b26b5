#!/usr/bin/env bash
# The unix socket path is only taken over when stale: a second daemon (another disk) given
# the socket path of a running daemon must exit non-zero within 10 s with a message, and the
# first daemon must keep its socket (nbdinfo --list still shows the first daemon's export
# only); a regular file at the socket path is refused and left intact.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
make_disk "$T/b.img" 1M
start_source --disk "first=$T/a.img" --nbd "unix:$SOCK"
rc=0
timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" --disk "second=$T/b.img" --nbd "unix:$SOCK" > "$T/out" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || fail "second daemon on a live socket still running after 10 s"
[ "$rc" -ne 0 ] || fail "second daemon on a live socket exited 0"
grep -q "$SOCK" "$T/out" || fail "second daemon's message does not name the socket: $(head -c 300 "$T/out")"
names=$(timeout 20 nbdinfo --list --json "nbd+unix:///?socket=$SOCK" |
  /usr/bin/python3 -c 'import json,sys; print(" ".join(e["export-name"] for e in json.load(sys.stdin)["exports"]))') ||
  fail "the first daemon's socket no longer answers"
[ "$names" = first ] || fail "socket now serves '$names', expected the first daemon's 'first'"
stop_source

echo precious > "$T/regular"
rc=0
timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" --disk "d=$T/b.img" --nbd "unix:$T/regular" > "$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a regular file at the socket path was not refused (exit $rc)"
[ "$(cat "$T/regular")" = precious ] || fail "the regular file at the socket path was replaced or changed"
pass
