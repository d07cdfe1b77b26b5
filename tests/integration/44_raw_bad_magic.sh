#!/usr/bin/env bash
# A request with a bad magic cannot be resynchronised: the server must hard-disconnect (close
# the connection within 5 s without sending anything more). Variants: a garbage magic as the
# first request, the reply magic (0x67446698) after a good request, and 28 bytes of zeroes
# with structured replies. Another connection open at the same time keeps working, the server
# stays up, and a new connection works afterwards.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os, struct
from nbd_raw import *

def main():
    bystander = connect("disk")
    for what, structured, magic, good_first in (
            ("garbage magic 0x12345678", False, 0x12345678, False),
            ("reply magic 0x67446698 after a good request", True, SIMPLE_REPLY_MAGIC, True),
            ("all-zero request", True, 0, False)):
        c = connect("disk", structured=structured)
        if good_first:
            expect_works(c, what + ": before")
        c.send_request(CMD_READ, 0, 4096, magic=magic, expect_reply=False)
        check(c.is_closed(5.0), what + ": connection not closed within 5 s")
        c.close()
        expect_works(bystander, what + ": other connection")
    bystander.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
