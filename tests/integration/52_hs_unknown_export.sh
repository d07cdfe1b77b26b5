#!/usr/bin/env bash
# Handshake: an export name that does not exist. NBD_OPT_GO and NBD_OPT_INFO for it get
# exactly one reply, NBD_REP_ERR_UNKNOWN (2^31+6), and negotiation continues: GO for the real
# export then works on the same connection. NBD_OPT_EXPORT_NAME for an unknown name cannot be
# answered with an error, so the server must close the connection (docs/formats/nbd.md: hard
# disconnect) without sending export data. Names differing only by case or by a trailing '/'
# are unknown too; a name containing NUL (which the spec forbids in strings) may get
# ERR_UNKNOWN or ERR_INVALID.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    for opt in (OPT_INFO, OPT_GO):
        for name in ("nope", "DISK", "disk\x00", "disk/"):
            r = c.option(opt, Client.info_data(name, [INFO_NAME]))
            ok = (REP_ERR_UNKNOWN, REP_ERR_INVALID) if "\x00" in name else (REP_ERR_UNKNOWN,)
            check(len(r) == 1 and r[0].type in ok,
                  "option %d for export %r: %r, expected one ERR_UNKNOWN" % (opt, name, r))
    c.go("disk")
    expect_works(c, "GO after ERR_UNKNOWN")
    c.disconnect()

    c = Client()
    c.greeting()
    c.send_option(OPT_EXPORT_NAME, b"nope")
    check(c.is_closed(5.0), "EXPORT_NAME of an unknown export: connection not closed within 5 s")
    c.close()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
