#!/usr/bin/env bash
# Handshake: NBD_OPT_SET_META_CONTEXT before NBD_OPT_STRUCTURED_REPLY gets exactly one
# NBD_REP_ERR_INVALID (no context selected); after STRUCTURED_REPLY the same option gets one
# NBD_REP_META_CONTEXT (a non-zero-length context name "base:allocation" with its id) then ACK,
# and BLOCK_STATUS after GO answers with that context id. Contexts chosen for one export do not
# carry over when GO names another export (BLOCK_STATUS there -> EINVAL). An unknown context
# name selects nothing (just ACK).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
make_disk "$T/b.img" 1M
start_source --disk "disk=$T/a.img" --disk "other=$T/b.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import struct
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    r = c.option(OPT_SET_META_CONTEXT, Client.meta_data("disk", ["base:allocation"]))
    check(len(r) == 1 and r[0].type == REP_ERR_INVALID,
          "SET_META_CONTEXT before STRUCTURED_REPLY: %r, expected one ERR_INVALID" % r)
    c.structured_reply()
    r = c.option(OPT_SET_META_CONTEXT, Client.meta_data("disk", ["nosuch:thing"]))
    check(len(r) == 1 and r[0].type == REP_ACK, "unknown context: %r, expected just ACK" % r)
    r = c.set_meta_context("disk")
    check(len(r) == 2 and r[0].type == REP_META_CONTEXT, "SET_META_CONTEXT: %r" % r)
    cid = struct.unpack(">I", r[0].data[:4])[0]
    check(r[0].data[4:] == b"base:allocation", "context name %r" % r[0].data[4:])
    c.go("disk")
    ck = c.send_request(CMD_BLOCK_STATUS, 0, 65536)
    rep = c.recv_reply()
    expect_ok(rep, "BLOCK_STATUS")
    bs = [x for x in rep.chunks if x.type == REPLY_TYPE_BLOCK_STATUS]
    check(len(bs) == 1, "BLOCK_STATUS: %d block status chunks, expected 1" % len(bs))
    check(struct.unpack(">I", bs[0].payload[:4])[0] == cid, "BLOCK_STATUS for context id %d, negotiated %d"
          % (struct.unpack(">I", bs[0].payload[:4])[0], cid))
    check((len(bs[0].payload) - 4) % 8 == 0 and len(bs[0].payload) > 4, "BLOCK_STATUS payload of %d bytes" % len(bs[0].payload))
    c.disconnect()

    c = Client()
    c.greeting()
    c.structured_reply()
    c.set_meta_context("disk")
    c.contexts = {}
    c.go("other")
    expect_error(c.request(CMD_BLOCK_STATUS, 0, 4096), EINVAL,
                 "BLOCK_STATUS on 'other' with base:allocation negotiated for 'disk'")
    expect_works(c, "after BLOCK_STATUS without a context")
    c.disconnect()

run(main)
PY
source_alive || fail "server died"
stop_source
pass
