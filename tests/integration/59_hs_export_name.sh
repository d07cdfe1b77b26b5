#!/usr/bin/env bash
# Handshake: entering transmission with the old NBD_OPT_EXPORT_NAME. Without NO_ZEROES the
# server answers u64 size, u16 transmission flags and 124 zero bytes; with NO_ZEROES only the
# 10 bytes (what follows must be the first reply of transmission, not zeroes). Size and flags
# must be right (HAS_FLAGS, FLUSH, FUA, TRIM, WRITE_ZEROES, MULTI_CONN; no SEND_DF without
# structured replies) and transmission works (simple replies).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 3M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import struct
from nbd_raw import *

MUST = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES | TF_CAN_MULTI_CONN

def main():
    for no_zeroes in (False, True):
        what = "EXPORT_NAME %s NO_ZEROES" % ("with" if no_zeroes else "without")
        c = Client()
        c.greeting(client_flags=FLAG_C_FIXED_NEWSTYLE | (FLAG_C_NO_ZEROES if no_zeroes else 0))
        c.send_option(OPT_EXPORT_NAME, b"disk")
        size, flags = struct.unpack(">QH", c.recv_exact(10))
        check(size == 3 << 20, "%s: size %d" % (what, size))
        check(flags & MUST == MUST, "%s: flags 0x%x lack 0x%x" % (what, flags, MUST & ~flags))
        check(not flags & (TF_READ_ONLY | TF_SEND_DF), "%s: flags 0x%x has READ_ONLY or SEND_DF" % (what, flags))
        if not no_zeroes:
            z = c.recv_exact(124)
            check(z == bytes(124), "%s: the 124 reserved bytes are not zero" % what)
        c.size, c.tflags = size, flags
        expect_works(c, what)
        c.disconnect()

run(main)
PY
source_alive || fail "server died"
stop_source
pass
