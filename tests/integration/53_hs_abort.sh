#!/usr/bin/env bash
# Handshake: NBD_OPT_ABORT gets NBD_REP_ACK (for option 2, no data), then the server closes
# the connection. Both as the first option and after other options (LIST, STRUCTURED_REPLY).
# The server stays up and a fresh connection works.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    for first in ([], [OPT_LIST, OPT_STRUCTURED_REPLY]):
        c = Client()
        c.greeting()
        for o in first:
            r = c.option(o)
            check(r[-1].type == REP_ACK, "option %d before ABORT: %r" % (o, r))
        c.send_option(OPT_ABORT)
        r = c.recv_opt_reply(OPT_ABORT)
        check(r.type == REP_ACK, "ABORT: reply %s, expected ACK" % rep_name(r.type))
        check(r.data == b"", "ABORT: ACK with %d bytes of data" % len(r.data))
        check(c.is_closed(5.0), "connection not closed within 5 s after ABORT")
        c.close()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
