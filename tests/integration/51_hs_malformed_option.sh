#!/usr/bin/env bash
# Handshake: malformed options get NBD_REP_ERR_INVALID (2^31+3) and negotiation continues:
#  - NBD_OPT_LIST with 5 bytes of data;
#  - NBD_OPT_STRUCTURED_REPLY with data;
#  - NBD_OPT_GO / NBD_OPT_INFO whose name length runs past the option's length, whose info
#    count promises more requests than sent, or with trailing bytes after the info requests;
#  - NBD_OPT_SET_META_CONTEXT whose query length runs past the option's length, or whose
#    query count promises more queries than sent.
# Exactly one reply each, for that option, with a message. Afterwards a correct GO on the
# same connection enters transmission and works, and a fresh connection works.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import struct
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    name = b"disk"
    cases = [
        ("LIST with data", OPT_LIST, b"\x00" * 5),
        ("GO: name length past the end", OPT_GO, struct.pack(">I", 100) + name + struct.pack(">H", 0)),
        ("GO: 3 info requests promised, 1 sent", OPT_GO, struct.pack(">I", 4) + name + struct.pack(">HH", 3, INFO_NAME)),
        ("GO: trailing bytes", OPT_GO, struct.pack(">I", 4) + name + struct.pack(">H", 0) + b"xyz"),
        ("GO: too short for the name length field", OPT_GO, b"\x00\x00"),
        ("INFO: name length past the end", OPT_INFO, struct.pack(">I", 5000) + name + struct.pack(">H", 0)),
        ("INFO: 2 info requests promised, 0 sent", OPT_INFO, struct.pack(">I", 4) + name + struct.pack(">H", 2)),
    ]
    for what, opt, data in cases:
        r = c.option(opt, data)
        check(len(r) == 1, "%s: %d replies %r, expected one ERR_INVALID" % (what, len(r), r))
        check(r[0].type == REP_ERR_INVALID, "%s: reply %s, expected ERR_INVALID" % (what, rep_name(r[0].type)))
        check(len(r[0].data) > 0, "%s: error without a message" % what)
    c.structured_reply()
    r = c.option(OPT_STRUCTURED_REPLY, b"\x01")
    check(len(r) == 1 and r[0].type == REP_ERR_INVALID,
          "STRUCTURED_REPLY with data: %r, expected one ERR_INVALID" % r)
    meta = [
        ("SET_META_CONTEXT: query length past the end",
         struct.pack(">I", 4) + name + struct.pack(">II", 1, 200) + b"base:allocation"),
        ("SET_META_CONTEXT: 2 queries promised, 1 sent",
         struct.pack(">I", 4) + name + struct.pack(">II", 2, 15) + b"base:allocation"),
    ]
    for what, data in meta:
        r = c.option(OPT_SET_META_CONTEXT, data)
        check(r[-1].type == REP_ERR_INVALID, "%s: final reply %s, expected ERR_INVALID (%r)" % (what, rep_name(r[-1].type), r))
        check(len(r) == 1, "%s: %d replies (a context was selected from a malformed option?) %r" % (what, len(r), r))
    c.set_meta_context("disk")
    c.go("disk")
    expect_works(c, "after malformed options")
    expect_ok(c.request(CMD_BLOCK_STATUS, 0, 4096), "BLOCK_STATUS after the good SET_META_CONTEXT")
    c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
