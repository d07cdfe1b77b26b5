#!/usr/bin/env bash
# Requests longer than the advertised maximum (32 MiB), raw bytes, with simple and structured
# replies, on a 64 MiB export (so the range itself is inside the export):
#  - WRITE of 33554433 bytes with its full payload, pipelined with a READ right behind it:
#    the WRITE gets EINVAL, its payload is consumed (not parsed as requests), the READ gets
#    its correct data, and nothing of the payload was written;
#  - READ of 33554433 bytes and of 0xffffffff bytes: EINVAL (no data follows the simple reply;
#    an error chunk with structured replies);
#  - exactly 32 MiB WRITE and READ: succeed (the boundary is inclusive).
# The connection keeps working after each, and a fresh connection works at the end.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os
from nbd_raw import *

def main():
    for structured in (False, True):
        mode = "structured" if structured else "simple"
        c = connect("disk", structured=structured)
        head = os.urandom(65536)
        expect_ok(c.write(0, head), "initial write")
        # oversized write + a read pipelined behind it
        big = MAX_REQUEST + 1
        w = c.send_request(CMD_WRITE, 0, big, 0, b"\x5a" * big)
        r = c.send_request(CMD_READ, 0, 65536)
        replies = {}
        for _ in range(2):
            x = c.recv_reply(); replies[x.cookie] = x
        expect_error(replies[w], EINVAL, "WRITE of %d bytes (%s)" % (big, mode))
        expect_ok(replies[r], "READ pipelined behind the oversized WRITE (%s)" % mode)
        check(replies[r].data == head,
              "READ behind the oversized WRITE (%s) returned other data: the payload was written "
              "or misparsed" % mode)
        for n in (big, 0xFFFFFFFF):
            x = c.read(0, n)
            expect_error(x, EINVAL, "READ of %d bytes (%s)" % (n, mode))
            if structured:
                check(not x.simple, "READ error as a simple reply with structured replies")
            expect_works(c, "after READ of %d bytes (%s)" % (n, mode))
        head = c.read(0, 65536).data      # expect_works wrote at 0
        # the boundary: exactly the maximum works
        data = os.urandom(MAX_REQUEST)
        expect_ok(c.write(65536, data), "WRITE of exactly 32 MiB (%s)" % mode)
        x = c.read(65536, MAX_REQUEST)
        expect_ok(x, "READ of exactly 32 MiB (%s)" % mode)
        check(x.data == data, "32 MiB read back differs (%s)" % mode)
        x = c.read(0, 65536)
        check(x.data == head, "first 64 KiB changed (%s)" % mode)
        c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
