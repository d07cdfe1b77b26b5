#!/usr/bin/env bash
# Unknown command types, raw bytes, simple and structured replies: type 99, 8, 0xffff, and
# CACHE (5, not advertised: docs/formats/nbd.md answers EINVAL), each with a zero and a
# non-zero length. Each must get EINVAL (22) for its own cookie, the server must not expect a
# payload after them (a READ pipelined right behind gets its correct data), and the
# connection and a fresh connection keep working.
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
        data = os.urandom(8192)
        expect_ok(c.write(0, data), "initial write")
        check(not c.tflags & TF_SEND_CACHE, "server advertises CACHE but docs say it does not")
        for cmd in (99, 8, 0xFFFF, CMD_CACHE):
            for n in (0, 4096):
                what = "command type %d, length %d (%s)" % (cmd, n, mode)
                a = c.send_request(cmd, 0, n)
                b = c.send_request(CMD_READ, 0, 8192)
                got = {}
                for _ in range(2):
                    r = c.recv_reply(); got[r.cookie] = r
                expect_error(got[a], EINVAL, what)
                expect_ok(got[b], what + ": READ pipelined behind it")
                check(got[b].data == data, what + ": READ behind it returned other data")
        expect_works(c, "after unknown commands (%s)" % mode, offset=65536)
        c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
