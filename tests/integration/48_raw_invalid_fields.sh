#!/usr/bin/env bash
# Invalid request fields, raw bytes, simple and structured replies (docs/formats/nbd.md
# "Bad input"): FLUSH with a non-zero offset or length -> EINVAL; zero-length READ, WRITE,
# TRIM, WRITE_ZEROES, BLOCK_STATUS -> EINVAL; BLOCK_STATUS on a connection that negotiated
# structured replies but no meta context, and on one without structured replies -> EINVAL.
# The connection keeps working after each; a fresh connection works at the end.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    for structured in (False, True):
        mode = "structured" if structured else "simple"
        c = connect("disk", structured=structured)
        cases = [("FLUSH with offset 4096", CMD_FLUSH, 4096, 0),
                 ("FLUSH with length 4096", CMD_FLUSH, 0, 4096),
                 ("READ of length 0", CMD_READ, 0, 0),
                 ("WRITE of length 0", CMD_WRITE, 0, 0),
                 ("TRIM of length 0", CMD_TRIM, 0, 0),
                 ("WRITE_ZEROES of length 0", CMD_WRITE_ZEROES, 0, 0)]
        if structured:
            cases.append(("BLOCK_STATUS of length 0", CMD_BLOCK_STATUS, 0, 0))
        else:
            cases.append(("BLOCK_STATUS without structured replies", CMD_BLOCK_STATUS, 0, 4096))
        for what, cmd, off, n in cases:
            what = "%s (%s replies)" % (what, mode)
            expect_error(c.request(cmd, off, n), EINVAL, what)
            expect_works(c, what)
        c.disconnect()
    c = connect("disk", structured=True, meta=False)
    expect_error(c.request(CMD_BLOCK_STATUS, 0, 4096), EINVAL, "BLOCK_STATUS without a meta context")
    expect_works(c, "BLOCK_STATUS without a meta context")
    c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
