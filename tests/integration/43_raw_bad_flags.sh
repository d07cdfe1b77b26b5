#!/usr/bin/env bash
# Invalid command flags, raw bytes, simple and structured replies. Must get EINVAL (22):
# READ with bit 15, READ with NO_HOLE, READ with REQ_ONE, READ with DF when structured replies
# are not negotiated, WRITE with FAST_ZERO and with bit 15 (payload sent: it must be consumed,
# a READ pipelined behind gets correct data, nothing is written), TRIM with NO_HOLE, FLUSH
# with NO_HOLE, WRITE_ZEROES with DF, BLOCK_STATUS with NO_HOLE. Valid flags must still work
# (positive control): READ|FUA, READ|DF (structured), WRITE|FUA, WRITE_ZEROES with
# FUA|NO_HOLE|FAST_ZERO, FLUSH|FUA, TRIM|FUA, BLOCK_STATUS|REQ_ONE. The connection keeps
# working after every rejected request, and a fresh connection works at the end.
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
        data = os.urandom(65536)
        expect_ok(c.write(0, data), "initial write")
        bad = [("READ | bit 15", CMD_READ, 0x8000, 4096),
               ("READ | NO_HOLE", CMD_READ, CMD_FLAG_NO_HOLE, 4096),
               ("READ | REQ_ONE", CMD_READ, CMD_FLAG_REQ_ONE, 4096),
               ("WRITE | FAST_ZERO", CMD_WRITE, CMD_FLAG_FAST_ZERO, 4096),
               ("WRITE | bit 15", CMD_WRITE, 0x8000, 4096),
               ("WRITE | NO_HOLE", CMD_WRITE, CMD_FLAG_NO_HOLE, 4096),
               ("TRIM | NO_HOLE", CMD_TRIM, CMD_FLAG_NO_HOLE, 4096),
               ("FLUSH | NO_HOLE", CMD_FLUSH, CMD_FLAG_NO_HOLE, 0),
               ("WRITE_ZEROES | DF", CMD_WRITE_ZEROES, CMD_FLAG_DF, 4096),
               ("WRITE_ZEROES | bit 15", CMD_WRITE_ZEROES, 0x8000, 4096)]
        if structured:
            bad.append(("BLOCK_STATUS | NO_HOLE", CMD_BLOCK_STATUS, CMD_FLAG_NO_HOLE, 4096))
        else:
            bad.append(("READ | DF without structured replies", CMD_READ, CMD_FLAG_DF, 4096))
        for what, cmd, fl, n in bad:
            what = "%s (%s replies)" % (what, mode)
            payload = b"\xee" * n if cmd == CMD_WRITE else b""
            a = c.send_request(cmd, 0, n, fl, payload)
            b = c.send_request(CMD_READ, 0, 65536)
            got = {}
            for _ in range(2):
                r = c.recv_reply(); got[r.cookie] = r
            expect_error(got[a], EINVAL, what)
            if structured and cmd == CMD_READ:
                check(not got[a].simple, what + ": simple reply to READ with structured replies")
            expect_ok(got[b], what + ": READ pipelined behind it")
            check(got[b].data == data, what + ": READ behind it returned other data (payload "
                  "written, request executed, or payload misparsed)")
        # valid flags still work
        fresh = os.urandom(4096)
        good = [("READ | FUA", CMD_READ, CMD_FLAG_FUA, 4096, b""),
                ("WRITE | FUA", CMD_WRITE, CMD_FLAG_FUA, 4096, fresh),
                ("WRITE_ZEROES | FUA | NO_HOLE | FAST_ZERO", CMD_WRITE_ZEROES,
                 CMD_FLAG_FUA | CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO, 4096, b""),
                ("TRIM | FUA", CMD_TRIM, CMD_FLAG_FUA, 4096, b""),
                ("FLUSH | FUA", CMD_FLUSH, CMD_FLAG_FUA, 0, b"")]
        if structured:
            good += [("READ | DF", CMD_READ, CMD_FLAG_DF, 4096, b""),
                     ("BLOCK_STATUS | REQ_ONE", CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 4096, b"")]
        for what, cmd, fl, n, payload in good:
            off = 0 if cmd == CMD_FLUSH else 131072
            expect_ok(c.request(cmd, off, n, fl, payload), "%s (%s replies)" % (what, mode))
        expect_works(c, "after bad flags (%s)" % mode, offset=262144)
        c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
