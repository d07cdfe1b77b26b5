#!/usr/bin/env bash
# Restart replays the journal into the backing disk: data written (not flushed) through NBD,
# then the daemon is killed with SIGKILL and the backing file's copy of that data is wiped
# behind its back (what a power cut can do to writes still in the page cache). The restart
# says it replayed records, and the data reads back intact; the disk holds the journal's
# view again.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
nbdsh_py "$(uri disk)" <<PY || fail "nbdsh writes failed"
import os
data = os.urandom(1 << 20)
for i in range(16):
    h.pwrite(data[i * 65536:(i + 1) * 65536], (8 << 20) + i * 65536)
open("$T/expected", "wb").write(data)
PY
kill9_source
dd if=/dev/zero of="$T/a.img" bs=1M seek=8 count=1 conv=notrunc status=none
cmp -s <(dd if="$T/a.img" bs=1M skip=8 count=1 status=none) "$T/expected" && fail "the wipe did not change the backing file"
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
grep -q "replayed [0-9]* journal records" "$SOURCE_LOG" || fail "restart did not replay the journal"
nbdsh_py "$(uri disk)" <<PY || fail "data written before the crash is not back after the restart"
import sys
got = h.pread(1 << 20, 8 << 20)
sys.exit(0 if got == open("$T/expected", "rb").read() else 1)
PY
journal_verify disk "$T/a.img"
stop_source
pass "$(grep -o 'replayed [0-9]* journal records[^;]*' "$SOURCE_LOG" | head -1)"
