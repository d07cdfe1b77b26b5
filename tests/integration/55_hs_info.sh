#!/usr/bin/env bash
# Handshake: NBD_OPT_INFO asking for NAME, DESCRIPTION and BLOCK_SIZE gets NBD_REP_INFO
# replies: EXPORT (exactly 10 bytes: size, transmission flags), NAME ("disk"), DESCRIPTION
# (non-empty), BLOCK_SIZE (exactly 12 bytes: 1, 4096, 33554432), then NBD_REP_ACK; and it
# does not enter transmission: further options (LIST, a second INFO without requests) are
# answered. The flags: HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES,
# SEND_FAST_ZERO, CAN_MULTI_CONN set, READ_ONLY clear; SEND_DF only once structured replies are
# negotiated (docs/formats/nbd.md). GO with the same requests then enters transmission.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 5M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import struct
from nbd_raw import *

MUST = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES | \
       TF_SEND_FAST_ZERO | TF_CAN_MULTI_CONN

def info(c, opt, reqs, structured):
    r = c.option(opt, Client.info_data("disk", reqs))
    check(r[-1].type == REP_ACK, "option %d: final reply %r" % (opt, r[-1]))
    for x in r[:-1]:
        check(x.type == REP_INFO, "option %d: reply %s before ACK, expected INFO" % (opt, rep_name(x.type)))
    got = Client.parse_info(r)
    check(INFO_EXPORT in got, "no NBD_INFO_EXPORT")
    check(len(got[INFO_EXPORT]) == 10, "NBD_INFO_EXPORT is %d bytes, expected 10" % len(got[INFO_EXPORT]))
    size, flags = struct.unpack(">QH", got[INFO_EXPORT])
    check(size == 5 << 20, "size %d" % size)
    check(flags & MUST == MUST, "transmission flags 0x%x lack 0x%x" % (flags, MUST & ~flags))
    check(not flags & TF_READ_ONLY, "READ_ONLY set")
    check(bool(flags & TF_SEND_DF) == structured,
          "SEND_DF is %s with structured replies %s" % (bool(flags & TF_SEND_DF), structured))
    if INFO_NAME in reqs:
        check(got.get(INFO_NAME) == b"disk", "NBD_INFO_NAME %r" % got.get(INFO_NAME))
    if INFO_DESCRIPTION in reqs:
        d = got.get(INFO_DESCRIPTION)
        check(d is not None and len(d) > 0, "NBD_INFO_DESCRIPTION missing or empty")
        d.decode("utf-8")
    if INFO_BLOCK_SIZE in reqs:
        b = got.get(INFO_BLOCK_SIZE)
        check(b is not None and len(b) == 12, "NBD_INFO_BLOCK_SIZE %r" % b)
        check(struct.unpack(">III", b) == (1, 4096, 33554432), "block sizes %r" % (struct.unpack(">III", b),))
    return got

def main():
    c = Client()
    c.greeting()
    full = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]
    info(c, OPT_INFO, full, False)
    r = c.option(OPT_LIST)          # still negotiating
    check(r[-1].type == REP_ACK, "LIST after INFO: %r (did INFO enter transmission?)" % r)
    info(c, OPT_INFO, [], False)
    c.structured_reply()
    info(c, OPT_INFO, full, True)
    info(c, OPT_GO, full, True)
    c.structured = True
    c.size = 5 << 20
    expect_works(c, "transmission after GO")
    c.disconnect()

run(main)
PY
source_alive || fail "server died"
stop_source
pass
