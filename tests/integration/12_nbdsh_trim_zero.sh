#!/usr/bin/env bash
# TRIM and WRITE_ZEROES through nbdsh on a disk full of random data: trim (plain and FUA),
# zero without NO_HOLE, zero with NO_HOLE, FAST_ZERO with and without NO_HOLE, and a FUA zero,
# on unaligned ranges. Zeroed ranges must read back as zeroes with every neighbouring byte
# intact (the whole disk is compared with a model; trimmed ranges are excluded, their contents
# are unspecified). Allocation (stat %b of the backing file on ext4), as docs/formats/nbd.md
# promises: TRIM and zero without NO_HOLE punch holes (allocation drops by about the range),
# zero with NO_HOLE keeps the range allocated (allocation does not drop).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 32M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

nbdsh_py "$(uri disk)" <<PY || fail "trim/zero check failed (see above)"
import os, sys
M = 1 << 20
img = "$T/a.img"
size = h.get_size()
model = bytearray(os.urandom(size))
for off in range(0, size, 8 * M):
    h.pwrite(bytes(model[off:off + 8 * M]), off)
h.flush()
def alloc():
    os.sync()
    return os.stat(img).st_blocks * 512
def fail(msg):
    print(msg); sys.exit(1)
skip = []   # trimmed ranges: contents unspecified

def do(what, fn, off, n, zero, expect_drop):
    before = alloc()
    fn()
    h.flush()
    after = alloc()
    if zero:
        model[off:off + n] = bytes(n)
        got = h.pread(n, off)
        if got != bytes(n):
            fail("%s [%d,+%d): range does not read back as zeroes" % (what, off, n))
    else:
        skip.append((off, n))
    drop = before - after
    if expect_drop and drop < n - 16384:
        fail("%s [%d,+%d): allocation dropped by %d bytes only (expected about %d: a punched hole)"
             % (what, off, n, drop, n))
    if not expect_drop and drop > 65536:
        fail("%s [%d,+%d): allocation dropped by %d bytes (NO_HOLE must not punch a hole)"
             % (what, off, n, drop))

F, NH, FZ = nbd.CMD_FLAG_FUA, nbd.CMD_FLAG_NO_HOLE, nbd.CMD_FLAG_FAST_ZERO
do("trim", lambda: h.trim(2 * M + 5, 1 * M + 3), 1 * M + 3, 2 * M + 5, False, True)
do("trim FUA", lambda: h.trim(1 * M, 29 * M, F), 29 * M, 1 * M, False, True)
do("zero", lambda: h.zero(2 * M + 123, 5 * M + 1000), 5 * M + 1000, 2 * M + 123, True, True)
do("zero NO_HOLE", lambda: h.zero(2 * M + 77, 9 * M + 11, NH), 9 * M + 11, 2 * M + 77, True, False)
do("zero FAST_ZERO", lambda: h.zero(2 * M, 13 * M, FZ), 13 * M, 2 * M, True, True)
do("zero FAST_ZERO|NO_HOLE", lambda: h.zero(1 * M + 512, 17 * M + 512, FZ | NH), 17 * M + 512, 1 * M + 512, True, False)
do("zero FUA", lambda: h.zero(3 * M + 1, 21 * M + 4095, F), 21 * M + 4095, 3 * M + 1, True, True)

# every byte outside the trimmed ranges matches the model
for off in range(0, size, 8 * M):
    got = h.pread(8 * M, off)
    want = model[off:off + 8 * M]
    for s, n in skip:
        lo, hi = max(s, off), min(s + n, off + 8 * M)
        if lo < hi:
            got = got[:lo - off] + bytes(hi - lo) + got[hi - off:]
            want[lo - off:hi - off] = bytes(hi - lo)
    if got != bytes(want):
        i = next(i for i in range(len(want)) if got[i] != want[i])
        fail("byte %d differs from the model after trim/zero (neighbouring data damaged?)" % (off + i))
h.shutdown()
PY
stop_source
pass
