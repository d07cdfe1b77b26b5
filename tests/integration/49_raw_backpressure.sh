#!/usr/bin/env bash
# Pipelining past the server's per-connection limits (docs/formats/nbd.md: 512 requests or
# 128 MiB in flight, then the server stops reading until replies go out). Raw bytes: all
# requests of a burst go out in one send (from a thread) while the main thread reads replies,
# so the server has more requests buffered than its limit allows it to start:
#  1. 600 x 4 KiB READs (structured replies), then the next request, a FLUSH, sent after all
#     600 replies arrived;
#  2. the same with simple replies and a READ as the next request;
#  3. 200 x 1 MiB WRITEs (200 MiB, past the byte limit) then a FLUSH;
#  4. 512 READs and a 4 KiB WRITE of "A" to offset 0 as request 513; then a second connection
#     writes "C" to offset 0 and flushes; then the first connection writes "D" elsewhere. The
#     old WRITE must not be executed again: offset 0 must still hold C, D must be written.
# Every request must get exactly one reply, for its own cookie, within 10 s, with correct data;
# no reply may be duplicated; the request after the burst must get its own reply.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 256M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os, struct, threading
from nbd_raw import *

def burst(c, reqs, what):
    """reqs: list of (cmd, offset, length, payload). Send them from a thread, read all replies."""
    cookies = []
    for cmd, off, n, pl in reqs:
        ck = c.next_cookie; c.next_cookie += 1
        c.pending[ck] = (cmd, off, n); cookies.append(ck)
    err = []
    blob = b"".join(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, ck, off, n) + pl
                    for ck, (cmd, off, n, pl) in zip(cookies, reqs))
    def sender():
        try:
            c.send(blob)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = {}
    for i in range(len(reqs)):
        try:
            r = c.recv_reply()
        except ProtocolError as e:
            raise TestFailure("%s: after %d of %d replies: %s" % (what, i, len(reqs), e))
        check(r.cookie not in got, "%s: second reply for cookie %d" % (what, r.cookie))
        got[r.cookie] = r
    t.join(10)
    check(not err, "%s: sending failed: %s" % (what, err))
    return [got[ck] for ck in cookies]

def after(c, what, cmd):
    try:
        if cmd == CMD_FLUSH:
            r = c.request(CMD_FLUSH)
        else:
            r = c.request(CMD_READ, 0, 4096)
    except ProtocolError as e:
        raise TestFailure("%s: the %s sent after the burst: %s" % (what, "FLUSH" if cmd == CMD_FLUSH else "READ", e))
    expect_ok(r, what + ": request after the burst")

DATA = os.urandom(600 * 4096)

def phase1():
    c = connect("disk", structured=True, meta=False)
    expect_ok(c.write(0, DATA), "fill")
    rs = burst(c, [(CMD_READ, i * 4096, 4096, b"") for i in range(600)], "600 READs (structured)")
    for i, r in enumerate(rs):
        expect_ok(r, "READ #%d" % i)
        check(r.data == DATA[i * 4096:(i + 1) * 4096], "READ #%d returned other data" % i)
    after(c, "600 READs (structured)", CMD_FLUSH)
    c.disconnect()

def phase2():
    c = connect("disk", structured=False)
    rs = burst(c, [(CMD_READ, i * 4096, 4096, b"") for i in range(600)], "600 READs (simple)")
    for i, r in enumerate(rs):
        check(r.error == 0 and r.data == DATA[i * 4096:(i + 1) * 4096], "READ #%d (simple): %r" % (i, r))
    after(c, "600 READs (simple)", CMD_READ)
    c.disconnect()

def phase3():
    c = connect("disk", structured=True, meta=False)
    mib = [bytes([i]) * (1 << 20) for i in range(200)]
    rs = burst(c, [(CMD_WRITE, (16 << 20) + (i << 20), 1 << 20, mib[i]) for i in range(200)], "200 x 1 MiB WRITEs")
    for i, r in enumerate(rs):
        expect_ok(r, "1 MiB WRITE #%d" % i)
    after(c, "200 x 1 MiB WRITEs", CMD_FLUSH)
    for i in (0, 99, 199):
        r = c.read((16 << 20) + (i << 20), 1 << 20)
        check(r.data == mib[i], "1 MiB WRITE #%d: read back differs" % i)
    c.disconnect()

def phase4():
    c = connect("disk", structured=True, meta=False)
    A, C, D = b"A" * 4096, b"C" * 4096, b"D" * 4096
    reqs = [(CMD_READ, (1 << 20) + i * 4096, 4096, b"") for i in range(512)]
    rs = burst(c, reqs + [(CMD_WRITE, 0, 4096, A)], "512 READs + WRITE A")
    expect_ok(rs[-1], "WRITE A as request 513")
    c2 = connect("disk", structured=True, meta=False)
    expect_ok(c2.write(0, C), "second connection: WRITE C to offset 0")
    expect_ok(c2.request(CMD_FLUSH), "second connection: FLUSH")
    r, why = None, ""
    try:
        r = c.write(65536, D)
    except ProtocolError as e:
        why = str(e)
    now = c2.read(0, 4096).data
    check(now == C, "acknowledged+flushed WRITE C at offset 0 (other connection) was overwritten "
          "with %r: the old WRITE A (request 513) was executed again" % now[:4])
    check(r is not None, "WRITE D after the burst: %s" % why)
    expect_ok(r, "WRITE D after the burst")
    check(c2.read(65536, 4096).data == D, "WRITE D after the burst was not written")
    c.disconnect()
    c2.disconnect()

def main():
    # each phase on its own connections; run them all and report every failure
    problems = []
    for i, ph in enumerate((phase1, phase2, phase3, phase4), 1):
        try:
            ph()
        except (TestFailure, ProtocolError) as e:
            problems.append("phase %d: %s" % (i, e))
    fresh_works("disk")
    check(not problems, " | ".join(problems))

run(main)
PY
source_alive || fail "server died"
stop_source
pass
