#!/usr/bin/env bash
# MULTI_CONN consistency: two nbdsh handles (two connections) on one export. For each
# direction and several ranges: the reader reads the range first (so a stale per-connection
# cache would show), the writer writes new random data (also with FUA) and gets its replies,
# the reader sends FLUSH and then must read exactly the new data. A third connection, opened
# after, sees everything too.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 32M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

nbdsh_plain <<PY || fail "multi-connection check failed (see above)"
import os, sys
U = "$(uri disk)"
a, b = nbd.NBD(), nbd.NBD()
a.connect_uri(U); b.connect_uri(U)
if not (a.can_multi_conn() and b.can_multi_conn()):
    print("server does not advertise MULTI_CONN"); sys.exit(1)
model = bytearray(8 << 20)
rounds = [(a, b, 0, 65536, 0), (b, a, 0, 65536, 0), (a, b, 5 << 20, 1 << 20, nbd.CMD_FLAG_FUA),
          (b, a, (7 << 20) + 4097, 300000, 0), (a, b, (7 << 20) + 100000, 4096, 0)]
for i, (w, r, off, n, fl) in enumerate(rounds):
    r.pread(n, off)                       # reader touches the range first
    data = os.urandom(n)
    w.pwrite(data, off, fl)
    r.flush()
    got = r.pread(n, off)
    if got != data:
        print("round %d: connection %s wrote %d bytes at %d, connection %s flushed and read other data"
              % (i, "ab"[w is b], n, off, "ab"[r is b])); sys.exit(1)
    model[off:off + n] = data
c = nbd.NBD(); c.connect_uri(U)
if c.pread(8 << 20, 0) != bytes(model):
    print("a third connection opened afterwards does not see all the writes"); sys.exit(1)
for x in (a, b, c):
    x.shutdown()
PY
stop_source
pass
