#!/usr/bin/env bash
# Many requests in flight on one connection (nbdsh aio): 64 concurrent writes of mixed sizes
# (512 B .. 1 MiB, some unaligned), then 64 concurrent reads of the same ranges, then 600
# concurrent 4 KiB write/read pairs (past the server's 512-per-connection limit, so its
# backpressure is exercised). Every command must complete successfully within the time limit,
# each read must return exactly what its write wrote, and a final flush must succeed.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 128M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

nbdsh_py "$(uri disk)" <<'PY' || fail "in-flight check failed (see above)"
import os, sys, time, random
rnd = random.Random(7)
def fail(msg):
    print(msg); sys.exit(1)

def drain(cookies, what):
    deadline = time.monotonic() + 60
    while h.aio_in_flight() > 0:
        if time.monotonic() > deadline:
            fail("%s: %d commands still in flight after 60 s" % (what, h.aio_in_flight()))
        h.poll(1000)
    for c in cookies:
        try:
            if not h.aio_command_completed(c):
                fail("%s: command %d not completed" % (what, c))
        except nbd.Error as e:
            fail("%s: command %d failed: %s" % (what, c, e))

# 64 writes of mixed sizes at disjoint offsets
sizes = [512, 4096, 65536, 1 << 20, 1000, 12345]
ranges, off = [], 0
for i in range(64):
    n = sizes[i % len(sizes)]
    ranges.append((off, os.urandom(n)))
    off += n + rnd.randrange(0, 8192)
cookies = [h.aio_pwrite(d, o) for o, d in ranges]
if h.aio_in_flight() < 2:
    fail("libnbd has only %d commands in flight" % h.aio_in_flight())
drain(cookies, "64 writes")
bufs = [(o, d, nbd.Buffer(len(d))) for o, d in ranges]
cookies = [h.aio_pread(b, o) for o, d, b in bufs]
drain(cookies, "64 reads")
for o, d, b in bufs:
    if bytes(b.to_bytearray()) != d:
        fail("read of %d bytes at %d returned other data than written" % (len(d), o))

# 600 4 KiB writes then 600 reads, all issued at once
base = 64 << 20
data = [os.urandom(4096) for _ in range(600)]
cookies = [h.aio_pwrite(d, base + i * 4096) for i, d in enumerate(data)]
drain(cookies, "600 writes")
bufs = [nbd.Buffer(4096) for _ in range(600)]
cookies = [h.aio_pread(b, base + i * 4096) for i, b in enumerate(bufs)]
drain(cookies, "600 reads")
for i, b in enumerate(bufs):
    if bytes(b.to_bytearray()) != data[i]:
        fail("4 KiB read #%d returned other data than written" % i)
h.flush()
h.shutdown()
PY
stop_source
pass
