#!/usr/bin/env bash
# A full journal disk (ENOSPC): the state directory sits on a 1 MiB tmpfs that a ballast file
# nearly fills. Writes that cannot be journaled get an error reply (ENOSPC) and change
# nothing on the backing disk; once the ballast is deleted writes succeed again, a flush
# voids the failed records, and after a restart the journal verifies, nothing is in the
# error state, and every acknowledged write is there.
. "$(dirname "$0")/../lib/common.sh"

mkdir -p "$T/state"
mount -t tmpfs -o size=1m tmpfs "$T/state" || fail "cannot mount a tmpfs (needs root)"
track_mount "$T/state"

head -c $((16 << 20)) /dev/zero | tr '\0' '\252' > "$T/a.img"   # 0xAA everywhere
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK" --journal-max-bytes 100%
head -c $((600 << 10)) /dev/zero > "$T/state/ballast"
nbdsh_py "$(uri disk)" <<PY > "$T/nbdsh.out" 2>&1 || { cat "$T/nbdsh.out"; fail "the ENOSPC sequence failed (see above)"; }
import errno, os, sys
acked, failed = [], None
for i in range(64):
    buf = bytes([i + 1]) * 65536
    try:
        h.pwrite(buf, i * 65536)
        acked.append(i)
    except nbd.Error as e:
        failed = (i, e.errnum)
        break
if failed is None:
    print("no write failed with the journal's disk full"); sys.exit(1)
i, err = failed
if err != errno.ENOSPC:
    print("write %d failed with errno %s, want ENOSPC" % (i, err)); sys.exit(1)
with open("$T/a.img", "rb") as f:
    f.seek(i * 65536)
    if f.read(65536) != b"\xaa" * 65536:
        print("the backing disk changed under a write that was not journaled"); sys.exit(1)
print("acked %d writes, write %d failed with ENOSPC" % (len(acked), i))
os.unlink("$T/state/ballast")
for j in range(i, i + 4):
    h.pwrite(bytes([j + 1]) * 65536, j * 65536)
h.flush()
open("$T/acked", "w").write("%d\n" % (i + 4))
PY
cat "$T/nbdsh.out"
grep -q "journal write of seq [0-9]* .* failed: No space left on device" "$SOURCE_LOG" || fail "the log does not report the failed journal write"
stop_source
journal_verify disk "$T/a.img"
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK" --journal-max-bytes 100%
[ -z "$(state_field disk error)" ] || fail "restart found an error: $(state_field disk error)"
n=$(cat "$T/acked")
nbdsh_py "$(uri disk)" <<PY || fail "acknowledged writes are missing after the restart"
import sys
for j in range($n):
    if h.pread(65536, j * 65536) != bytes([j + 1]) * 65536:
        print("block %d lost" % j); sys.exit(1)
PY
stop_source
pass
