#!/usr/bin/env bash
# Requests past the end of the export, raw bytes (tests/lib/nbd_raw.py), once with simple and
# once with structured replies. Expected (docs/formats/nbd.md, NBD spec "SHOULD return ENOSPC"
# for writes beyond the end): WRITE, TRIM, WRITE_ZEROES past the end -> ENOSPC (28), a
# write's payload is consumed; READ and BLOCK_STATUS past the end -> EINVAL (22). Cases: a
# range straddling the end, one starting at the end, and one whose offset+length wraps past
# 2^64 (must not be treated as a small offset: the start of the disk must stay unchanged). A
# rejected write must not change the in-range part. After each: the same connection still
# works (write+read back), and at the end a fresh connection works.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os
from nbd_raw import *

def main():
    for structured in (False, True):
        mode = "structured" if structured else "simple"
        c = connect("disk", structured=structured)
        size = c.size
        check(size == 1 << 20, "export size %d" % size)
        base = os.urandom(size)
        expect_ok(c.write(0, base), "initial fill")
        wrap = 2**64 - 4096
        cases = [
            ("WRITE straddling the end", CMD_WRITE, size - 100, 4096, ENOSPC),
            ("WRITE at the end", CMD_WRITE, size, 1, ENOSPC),
            ("WRITE far past the end", CMD_WRITE, 1 << 40, 512, ENOSPC),
            ("WRITE with offset+length wrapping 2^64", CMD_WRITE, wrap, 8192, ENOSPC),
            ("TRIM straddling the end", CMD_TRIM, size - 4096, 8192, ENOSPC),
            ("TRIM with offset+length wrapping 2^64", CMD_TRIM, wrap, 8192, ENOSPC),
            ("WRITE_ZEROES straddling the end", CMD_WRITE_ZEROES, size - 1, 2, ENOSPC),
            ("WRITE_ZEROES at the end", CMD_WRITE_ZEROES, size, 4096, ENOSPC),
            ("WRITE_ZEROES with offset+length wrapping 2^64", CMD_WRITE_ZEROES, wrap, 8192, ENOSPC),
            ("READ straddling the end", CMD_READ, size - 100, 4096, EINVAL),
            ("READ at the end", CMD_READ, size, 1, EINVAL),
            ("READ with offset+length wrapping 2^64", CMD_READ, wrap, 8192, EINVAL),
        ]
        if structured:
            cases += [("BLOCK_STATUS straddling the end", CMD_BLOCK_STATUS, size - 512, 4096, EINVAL),
                      ("BLOCK_STATUS at the end", CMD_BLOCK_STATUS, size, 4096, EINVAL)]
        for what, cmd, off, n, err in cases:
            what = "%s (%s replies)" % (what, mode)
            payload = os.urandom(n) if cmd == CMD_WRITE else b""
            r = c.request(cmd, off, n, 0, payload)
            expect_error(r, err, what)
            if cmd == CMD_READ:
                if structured:
                    check(not r.simple, what + ": simple reply to READ with structured replies")
            # nothing in range changed (the whole disk is compared)
            r2 = c.read(0, size)
            expect_ok(r2, what + ": read of the disk afterwards")
            check(r2.data == base, what + ": disk contents changed by a rejected request")
            expect_works(c, what)
            base = c.read(0, size).data
        c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
