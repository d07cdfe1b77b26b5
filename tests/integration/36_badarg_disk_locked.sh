#!/usr/bin/env bash
# A disk already served by a running daemon is refused by a second daemon (README: "The file
# is locked; a second daemon on the same disk is refused"): the second one exits non-zero
# within 10 s with a message about the lock, and the first one keeps serving (a read/write
# round trip afterwards works and its socket is untouched).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 4M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
rc=0
timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" --disk "again=$T/a.img" --nbd "unix:$T/second.sock" > "$T/out" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || fail "second daemon on the same disk still running after 10 s"
[ "$rc" -ne 0 ] || fail "second daemon on the same disk exited 0"
grep -qiE 'lock' "$T/out" || fail "second daemon's message does not mention the lock: $(head -c 300 "$T/out")"
source_alive || fail "first daemon died"
nbdsh_py "$(uri disk)" <<'PY' || fail "first daemon no longer serves after the refused second start"
h.pwrite(b"x" * 4096, 0)
assert h.pread(4096, 0) == b"x" * 4096
h.shutdown()
PY
stop_source
pass
