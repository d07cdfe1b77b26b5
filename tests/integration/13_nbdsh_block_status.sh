#!/usr/bin/env bash
# NBD_CMD_BLOCK_STATUS (base:allocation) through nbdsh: a fresh sparse disk is one hole,zero
# range; after a 64 KiB write at 4 MiB the reply is hole / data / hole with exact boundaries;
# REQ_ONE returns exactly one extent no longer than asked; a query starting mid-data starts
# with data; after WRITE_ZEROES (no NO_HOLE) of the written range it is a hole again. Every
# reply is for base:allocation, starts at the requested offset and never exceeds the request.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

nbdsh_plain <<PY || fail "block status check failed (see above)"
import os, sys
M = 1 << 20
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri("$(uri disk)")
size = h.get_size()
def fail(msg):
    print(msg); sys.exit(1)

def status(off, n, flags=0):
    got = []
    def cb(ctx, o, entries, err):
        if ctx != nbd.CONTEXT_BASE_ALLOCATION:
            fail("extent callback for context %r" % ctx)
        if o != off:
            fail("extents start at %d, request at %d" % (o, off))
        got.extend((entries[i], entries[i + 1]) for i in range(0, len(entries), 2))
    h.block_status(n, off, cb, flags)
    if not got:
        fail("no extents for [%d,+%d)" % (off, n))
    # merge neighbours of equal type
    out, pos = [], off
    for ln, fl in got:
        if ln == 0:
            fail("zero-length extent in reply for [%d,+%d)" % (off, n))
        if out and out[-1][2] == fl:
            out[-1][1] += ln
        else:
            out.append([pos, ln, fl])
        pos += ln
    if pos > off + n and not flags & nbd.CMD_FLAG_REQ_ONE:
        fail("extents cover up to %d, beyond the request's end %d" % (pos, off + n))
    return out, got

HZ = nbd.STATE_HOLE | nbd.STATE_ZERO
ext, _ = status(0, size)
if ext != [[0, size, HZ]]:
    fail("fresh sparse disk: %r, expected one hole,zero extent %r" % (ext, [[0, size, HZ]]))

h.pwrite(os.urandom(65536), 4 * M)
ext, _ = status(0, size)
want = [[0, 4 * M, HZ], [4 * M, 65536, 0], [4 * M + 65536, size - 4 * M - 65536, HZ]]
if ext != want:
    fail("after a write at 4 MiB: %r, expected %r" % (ext, want))

ext, raw = status(4 * M, 8 * M, nbd.CMD_FLAG_REQ_ONE)
if len(raw) != 1 or raw[0][1] != 0 or not 0 < raw[0][0] <= 65536:
    fail("REQ_ONE at 4 MiB: %r, expected one data extent of at most 65536 bytes" % raw)

ext, _ = status(4 * M + 1000, 100000)
if ext[0][2] != 0 or ext[0][1] != 65536 - 1000:
    fail("query from mid-data: %r, expected data for the first %d bytes" % (ext, 65536 - 1000))

h.zero(65536, 4 * M)
ext, _ = status(0, size)
if ext != [[0, size, HZ]]:
    fail("after WRITE_ZEROES of the data: %r, expected one hole,zero extent" % ext)
h.shutdown()
PY
stop_source
pass
