#!/usr/bin/env bash
# Handshake: client flags with an unknown bit (bit 2, bit 31, all ones) must make the server
# close the connection (spec: "the server MUST close the TCP connection if it does not
# recognize the client's flags") without answering anything. The server stays up; fresh
# connections work.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    for flags in (FLAG_C_FIXED_NEWSTYLE | 4, FLAG_C_FIXED_NEWSTYLE | 0x80000000, 0xFFFFFFFF):
        c = Client()
        c.greeting(client_flags=flags)
        # an option right behind: must not be answered
        try:
            c.send_option(OPT_LIST)
        except OSError:
            pass
        check(c.is_closed(5.0), "client flags 0x%x: connection not closed within 5 s" % flags)
        c.close()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
