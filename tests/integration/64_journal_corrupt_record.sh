#!/usr/bin/env bash
# A corrupt record that is not the tail is never skipped silently. One byte of an early
# record's payload is flipped while the daemon is stopped:
#   - `blockrep journal verify` exits 1 and names the segment and the byte offset;
#   - the daemon still starts and serves the disk (its data untouched), logs the corruption
#     with segment and offset, keeps the journal for inspection in journal.corrupt-*, and puts
#     the disk in the error state: state.json "error" names segment and offset, mode bitmap
#     with every region dirty (a full resync is required);
#   - `journal verify` then reports the error (exit 1).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
nbdsh_py "$(uri disk)" <<PY || fail "nbdsh writes failed"
import os
data = os.urandom(20 * 65536)
for i in range(20):
    h.pwrite(data[i * 65536:(i + 1) * 65536], i * 65536)
open("$T/expected", "wb").write(data)
PY
stop_source

"$BLOCKREP_CLI" journal dump --state-dir "$STATE" --disk disk --json > "$T/dump.json"
read -r segment offset < <(/usr/bin/python3 -c '
import json, sys
w = [r for r in json.load(open(sys.argv[1]))["records"] if r["kind"] == "write"]
print(w[4]["segment"], w[4]["file_offset"])' "$T/dump.json")
/usr/bin/python3 - "$STATE/disks/disk/journal/$segment" "$offset" <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2]) + 64 + 1000   # inside the payload
with open(path, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xFF]))
PY

rc=0
"$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk disk > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/verify.out"; fail "journal verify exited $rc on a corrupt journal (want 1)"; }
grep -q "CORRUPT: segment $segment offset $offset" "$T/verify.out" || { cat "$T/verify.out"; fail "journal verify does not name segment $segment offset $offset"; }

start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
grep -q "journal corrupt: segment $segment offset $offset" "$SOURCE_LOG" || fail "the daemon's log does not name the corrupt record"
[ "$(state_field disk mode)" = bitmap ] || fail "mode is $(state_field disk mode), want bitmap"
[ "$(state_field disk resync_required)" = true ] || fail "resync_required is not true"
state_field disk error | grep -q "segment $segment offset $offset" || fail "state.json error does not name the record: $(state_field disk error)"
ls -d "$STATE"/disks/disk/journal.corrupt-*/"$segment" > /dev/null || fail "the corrupt journal was not kept for inspection"
nbdsh_py "$(uri disk)" <<PY || fail "the disk's data changed (or it is not served)"
import sys
sys.exit(0 if h.pread(20 * 65536, 0) == open("$T/expected", "rb").read() else 1)
PY
rc=0
"$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk disk > "$T/verify2.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/verify2.out"; fail "journal verify exited $rc for a disk in the error state (want 1)"; }
grep -q "ERROR: journal corrupt" "$T/verify2.out" || { cat "$T/verify2.out"; fail "journal verify does not show the error"; }
grep -q "bitmap: 256 dirty region" "$T/verify2.out" || { cat "$T/verify2.out"; fail "not every region of the 16 MiB disk is dirty"; }
stop_source
pass
