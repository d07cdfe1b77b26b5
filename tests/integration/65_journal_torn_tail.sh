#!/usr/bin/env bash
# A torn last record (half written when the daemon died; never acknowledged) is dropped
# without fuss: after a SIGKILL, the last record of the segment is cut short in the file.
# `journal verify` still passes (a torn tail is not corruption), the restart serves without
# an error, later writes work, and a further restart finds the journal clean.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
nbdsh_py "$(uri disk)" <<'PY' || fail "nbdsh writes failed"
import os
for i in range(10):
    h.pwrite(os.urandom(65536), i * 65536)
PY
kill9_source
"$BLOCKREP_CLI" journal dump --state-dir "$STATE" --disk disk --json > "$T/dump.json"
read -r segment offset last_seq < <(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["records"][-1]
assert r["kind"] == "write", r
print(r["segment"], r["file_offset"], r["seq"])' "$T/dump.json")
truncate -s $((offset + 64 + 30000)) "$STATE/disks/disk/journal/$segment"
"$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk disk > "$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "journal verify rejects a torn tail"; }
grep -q "seq [0-9]*\.\.$((last_seq - 1))" "$T/verify.out" || { cat "$T/verify.out"; fail "the torn record (seq $last_seq) was not left out"; }

start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
[ -z "$(state_field disk error)" ] || fail "restart put the disk in error: $(state_field disk error)"
[ "$(state_field disk mode)" = journaling ] || fail "restart left journaling"
nbdsh_py "$(uri disk)" <<'PY' || fail "writes after the restart failed"
import os
buf = os.urandom(65536)
h.pwrite(buf, 1 << 20)
h.flush()
assert h.pread(65536, 1 << 20) == buf
PY
stop_source
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
[ -z "$(state_field disk error)" ] || fail "second restart found an error: $(state_field disk error)"
journal_verify disk "$T/a.img"
stop_source
pass
