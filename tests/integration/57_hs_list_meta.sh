#!/usr/bin/env bash
# Handshake: NBD_OPT_LIST_META_CONTEXT (after STRUCTURED_REPLY) lists base:allocation: with no
# queries, with the query "base:" and with "base:allocation" the replies are one
# NBD_REP_META_CONTEXT whose name is "base:allocation", then ACK; a query for an unknown
# namespace gives just ACK. Listing selects nothing: after GO without SET_META_CONTEXT,
# BLOCK_STATUS is refused with EINVAL.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
from nbd_raw import *

def main():
    c = Client()
    c.greeting()
    c.structured_reply()
    for q in ([], ["base:"], ["base:allocation"]):
        r = c.option(OPT_LIST_META_CONTEXT, Client.meta_data("disk", q))
        check(r[-1].type == REP_ACK, "LIST_META_CONTEXT %r: final reply %r" % (q, r[-1]))
        names = [x.data[4:] for x in r[:-1] if x.type == REP_META_CONTEXT]
        check(len(r) == 2 and names == [b"base:allocation"],
              "LIST_META_CONTEXT %r: %r, expected one META_CONTEXT base:allocation then ACK" % (q, r))
    r = c.option(OPT_LIST_META_CONTEXT, Client.meta_data("disk", ["qemu:dirty-bitmap:x"]))
    check(len(r) == 1 and r[0].type == REP_ACK, "LIST_META_CONTEXT of an unknown namespace: %r" % r)
    c.go("disk")
    expect_error(c.request(CMD_BLOCK_STATUS, 0, 4096), EINVAL,
                 "BLOCK_STATUS after only LIST_META_CONTEXT (nothing selected)")
    expect_works(c, "after the refused BLOCK_STATUS")
    c.disconnect()

run(main)
PY
source_alive || fail "server died"
stop_source
pass
