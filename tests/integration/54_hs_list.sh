#!/usr/bin/env bash
# Handshake: NBD_OPT_LIST with three exports. Replies: one NBD_REP_SERVER per export (data =
# u32 name length, the name, then the description, name length within the data), then one
# NBD_REP_ACK with no data; every reply names option 3. The names are exactly the configured
# ones, each once. Negotiation continues afterwards: a second LIST gives the same answer and GO
# works on the same connection.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
make_disk "$T/b.img" 2M
make_disk "$T/c.img" 3M
start_source --disk "alpha=$T/a.img" --disk "beta=$T/b.img" --disk "vm-disk_3.x=$T/c.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import struct
from nbd_raw import *

def listing(c):
    r = c.option(OPT_LIST)
    check(r[-1].type == REP_ACK and r[-1].data == b"", "LIST: final reply %r, expected ACK without data" % r[-1])
    names = []
    for x in r[:-1]:
        check(x.type == REP_SERVER, "LIST: reply %s, expected SERVER" % rep_name(x.type))
        check(len(x.data) >= 4, "SERVER reply of %d bytes" % len(x.data))
        n = struct.unpack(">I", x.data[:4])[0]
        check(4 + n <= len(x.data), "SERVER reply: name length %d, data %d bytes" % (n, len(x.data)))
        names.append(x.data[4:4 + n].decode())
    return names

def main():
    c = Client()
    c.greeting()
    want = ["alpha", "beta", "vm-disk_3.x"]
    names = listing(c)
    check(sorted(names) == want, "LIST names %r, expected %r" % (names, want))
    check(sorted(listing(c)) == want, "second LIST differs")
    c.go("beta")
    check(c.size == 2 << 20, "GO beta after LIST: size %d" % c.size)
    expect_works(c, "transmission after LIST")
    c.disconnect()

run(main)
PY
source_alive || fail "server died"
stop_source
pass
