#!/usr/bin/env bash
# nbdsh (libnbd, strict mode) pwrite/pread round trips: aligned 64 KiB, unaligned 1000 bytes at
# offset 69633, the last 100 bytes of the export, a maximum-size 32 MiB request, a FUA write,
# and flush. Every read must return exactly what was written, and after flush the backing
# file holds the same bytes at the same offsets (read directly from the file).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

nbdsh_py "$(uri disk)" <<PY || fail "nbdsh round trip failed (see above)"
import os, sys
size = h.get_size()
assert size == 64 << 20, "size %d" % size
assert h.get_strict_mode() != 0, "libnbd strict mode is off"
cases = [(0, 65536, 0), (65536 + 4097, 1000, 0), (size - 100, 100, 0), (16 << 20, 32 << 20, 0),
         (1 << 20, 131072, nbd.CMD_FLAG_FUA)]
written = []
for off, n, fl in cases:
    buf = os.urandom(n)
    h.pwrite(buf, off, fl)
    got = h.pread(n, off)
    if got != buf:
        print("read back of %d bytes at %d (flags %d) differs" % (n, off, fl)); sys.exit(1)
    written.append((off, buf))
h.flush()
# the backing file, read directly, has the same bytes
with open("$T/a.img", "rb") as f:
    for off, buf in written:
        f.seek(off)
        if f.read(len(buf)) != buf:
            print("backing file differs at %d (+%d) after flush" % (off, len(buf))); sys.exit(1)
h.shutdown()
PY
stop_source
pass
