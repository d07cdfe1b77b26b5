#!/usr/bin/env bash
# Clients stalled in the handshake must not block anyone else: 10 connections that stop at
# different points (before sending client flags, after the flags, in the middle of an option
# header, in the middle of an option's data, in transmission mid-request) stay open while
# nbdinfo and a read/write client on fresh connections are served promptly (within 10 s).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os, struct, subprocess, time
from nbd_raw import *

def main():
    stalled = []
    for i in range(2):
        c = Client(); stalled.append(c)                                        # nothing sent
        c = Client(); c.greeting(client_flags=None); c.send(b"\x00"); stalled.append(c)
        c = Client(); c.greeting(); stalled.append(c)                          # flags only
        c = Client(); c.greeting(); c.send(struct.pack(">Q", IHAVEOPT)); stalled.append(c)
        c = Client(); c.greeting(); c.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 50) + b"\x00\x00"); stalled.append(c)
    t0 = time.monotonic()
    out = subprocess.run(["timeout", "10", "nbdinfo", "--size", "nbd+unix:///disk?socket=" + os.environ["SOCK"]],
                         capture_output=True, text=True)
    check(out.returncode == 0 and out.stdout.strip() == str(1 << 20),
          "nbdinfo with 10 stalled clients: exit %d, %r %r" % (out.returncode, out.stdout, out.stderr))
    c = connect("disk")
    c.s.settimeout(10)
    c.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 0, 4096) + b"x" * 100)  # mid-request
    fresh_works("disk", "a client while others are stalled")
    check(time.monotonic() - t0 < 10, "serving took %.1f s with stalled clients" % (time.monotonic() - t0))
    for s in stalled + [c]:
        s.close()
    fresh_works("disk", "after the stalled clients left")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
