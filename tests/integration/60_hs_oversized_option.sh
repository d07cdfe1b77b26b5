#!/usr/bin/env bash
# Handshake limits (docs/formats/nbd.md): an option with 70000 bytes of data (over the 64 KiB
# limit) gets NBD_REP_ERR_TOO_BIG (2^31+9) after the server skipped the data, and negotiation
# continues (GO works). A client that sends option after option without choosing an export is
# cut off: after at most 128 options the server closes the connection (no more than 128
# replies). A fresh connection works afterwards.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    r = c.option(0x4242, b"\x01" * 70000)
    check(len(r) == 1 and r[0].type == REP_ERR_TOO_BIG, "70000-byte option: %r, expected ERR_TOO_BIG" % r)
    c.structured_reply()
    c.go("disk")
    expect_works(c, "after the oversized option")
    c.disconnect()

    c = Client()
    c.greeting()
    answered = 0
    closed = False
    for i in range(300):
        try:
            c.send_option(0x1234)
            c.recv_opt_reply(0x1234)
            answered += 1
        except (ProtocolError, OSError):
            closed = True
            break
    check(closed, "300 unknown options answered without the connection being closed")
    check(answered <= 128, "%d options answered before the cut-off, limit is 128" % answered)
    c.close()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
