#!/usr/bin/env bash
# NBD_CMD_DISC with requests in flight: 32 x 64 KiB WRITEs pipelined and DISC right behind
# them in one send. docs/formats/nbd.md: in-flight requests finish and are answered, then the
# connection closes. Checks: all 32 WRITEs get a successful reply, DISC gets none, the server
# then closes the connection, and the 32 writes are in the backing file after a clean stop.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 8M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<PY
import os, struct
from nbd_raw import *

def main():
    c = connect("disk")
    blob = b""
    for i in range(32):
        c.pending[100 + i] = (CMD_WRITE, i * 65536, 65536)
        blob += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 100 + i, i * 65536, 65536)
        blob += struct.pack(">Q", i + 1) * 8192
    blob += struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC, 999, 0, 0)
    c.send(blob)
    for _ in range(32):
        r = c.recv_reply()
        expect_ok(r, "WRITE cookie %d before DISC" % r.cookie)
    check(c.is_closed(5.0), "connection not closed within 5 s after DISC")

run(main)
PY
stop_source
/usr/bin/python3 - "$T/a.img" <<'PY' || fail "writes answered before DISC are not all in the backing file"
import struct, sys
f = open(sys.argv[1], "rb")
for i in range(32):
    f.seek(i * 65536)
    if f.read(65536) != struct.pack(">Q", i + 1) * 8192:
        print("write %d missing" % i); sys.exit(1)
PY
pass
