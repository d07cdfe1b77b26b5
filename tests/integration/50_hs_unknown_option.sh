#!/usr/bin/env bash
# Handshake: unknown options (0x1234 without data, 0x7fff with 100 bytes of data, 0xffffffff)
# and STARTTLS (5: no TLS here, docs say ERR_UNSUP) each get exactly one reply,
# NBD_REP_ERR_UNSUP (2^31+1), naming the option, carrying a human-readable message; the
# option's data is skipped, so negotiation continues on the same connection: NBD_OPT_GO
# afterwards succeeds and transmission works. A fresh connection works too.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    for opt, data in ((0x1234, b""), (0x7FFF, b"\xab" * 100), (0xFFFFFFFF, b""), (OPT_STARTTLS, b"")):
        r = c.option(opt, data)
        check(len(r) == 1, "option 0x%x: %d replies %r, expected one" % (opt, len(r), r))
        check(r[0].type == REP_ERR_UNSUP, "option 0x%x: reply %s, expected ERR_UNSUP" % (opt, rep_name(r[0].type)))
        check(len(r[0].data) > 0, "option 0x%x: ERR_UNSUP without a message" % opt)
        r[0].data.decode("utf-8")
    c.structured_reply()
    c.go("disk")
    expect_works(c, "after unknown options")
    c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
