#!/usr/bin/env bash
# The journal's budget: with --journal-max-bytes 2M, 4 MiB of writes all succeed; the disk
# switches to its dirty bitmap and reports "resync required" (state.json, journal verify,
# the log), the journal's segments are deleted, every 64 KiB region written (before and
# after the switch) is dirty, the data is intact, and a restart keeps the bitmap mode and
# goes on marking regions.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK" --journal-max-bytes 2M
nbdsh_py "$(uri disk)" <<PY || fail "writes past the budget failed"
import os
data = os.urandom(4 << 20)
for i in range(64):
    h.pwrite(data[i * 65536:(i + 1) * 65536], i * 65536)
h.flush()
assert h.pread(4 << 20, 0) == data, "data read back differs"
PY
grep -q "passed its budget of 2.0 MiB" "$SOURCE_LOG" || fail "the log does not say the budget was passed"
[ "$(state_field disk mode)" = bitmap ] || fail "mode is $(state_field disk mode), want bitmap"
[ "$(state_field disk resync_required)" = true ] || fail "resync_required is not true"
state_field disk reason | grep -q budget || fail "reason: $(state_field disk reason)"
[ -z "$(ls "$STATE/disks/disk/journal/")" ] || fail "journal segments left: $(ls "$STATE/disks/disk/journal/")"
"$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk disk > "$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "journal verify failed"; }
grep -q "resync required" "$T/verify.out" || { cat "$T/verify.out"; fail "journal verify does not say resync required"; }
grep -q "bitmap: 64 dirty region" "$T/verify.out" || { cat "$T/verify.out"; fail "want 64 dirty regions (4 MiB / 64 KiB)"; }
stop_source

start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK" --journal-max-bytes 2M
grep -q "tracking changes in a dirty bitmap" "$SOURCE_LOG" || fail "restart does not report the bitmap mode"
nbdsh_py "$(uri disk)" <<'PY' || fail "write after restart failed"
h.pwrite(b"\x01" * 4096, 32 << 20)
h.flush()
PY
stop_source
"$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk disk > "$T/verify2.out" 2>&1 || { cat "$T/verify2.out"; fail "journal verify failed"; }
grep -q "bitmap: 65 dirty region" "$T/verify2.out" || { cat "$T/verify2.out"; fail "the write after the restart was not marked"; }
pass
