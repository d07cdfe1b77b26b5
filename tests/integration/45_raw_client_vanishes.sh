#!/usr/bin/env bash
# Clients that vanish at awkward moments must not disturb the server or other clients:
#  - a WRITE header promising 1 MiB, 1000 bytes of payload, then close (the partial write is
#    dropped: the bytes at its offset stay as they were);
#  - half a request header, then close;
#  - connect and close without reading the greeting; close after 2 bytes of client flags;
#    close in the middle of an option;
#  - 64 pipelined 1 MiB READs, then close without reading any reply (the server's sends fail
#    with EPIPE/ECONNRESET: it must not die of SIGPIPE).
# A client connected throughout keeps working after each, the server stays up, and a fresh
# connection works at the end.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os, socket, struct, time
from nbd_raw import *

def main():
    other = connect("disk")
    keep = os.urandom(1 << 20)
    expect_ok(other.write(1 << 20, keep), "initial write")

    c = connect("disk", structured=False)
    c.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 1 << 20, 1 << 20) + b"\xab" * 1000)
    c.close()
    expect_works(other, "after a client vanished mid-WRITE payload")

    c = connect("disk")
    c.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 1, 0, 4096)[:13])
    c.close()
    expect_works(other, "after a client vanished mid-header")

    c = Client(); c.close()
    c = Client(); c.greeting(client_flags=None); c.send(b"\x00\x00"); c.close()
    c = Client(); c.greeting(); c.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"\x00" * 10); c.close()
    expect_works(other, "after clients vanished during the handshake")

    c = connect("disk")
    for i in range(64):
        c.send_request(CMD_READ, i << 20, 1 << 20, expect_reply=False)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    c.close()
    time.sleep(0.5)   # nothing to poll: give the server time to fail sending the replies
    expect_works(other, "after a client vanished with 64 READs in flight")

    r = other.read(1 << 20, 1 << 20)
    expect_ok(r, "read of the partially written range")
    check(r.data == keep, "the vanished client's partial WRITE changed the disk")
    other.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
