#!/usr/bin/env bash
# With structured replies negotiated, a failing READ must be answered with a structured error
# chunk, never a simple reply (spec: "MUST NOT use a simple reply for NBD_CMD_READ (even for
# the case of an early EINVAL due to bad flags)"). Checked byte by byte for a READ past the
# end and a READ with a bad flag: exactly one chunk, magic 0x668e33ef, the request's cookie,
# type NBD_REPLY_TYPE_ERROR (32769) or ERROR_OFFSET (32770), flag DONE, error EINVAL, a
# payload whose length matches its message length, and a non-empty message. A good READ gets
# OFFSET_DATA chunk(s) for the requested offset, the last flagged DONE. The connection keeps
# working, and a fresh connection too.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

raw_check <<'PY'
import os, struct
from nbd_raw import *

def raw_chunks(c, cookie):
    """Chunks for cookie until DONE, read byte by byte from the stream (no helper parsing)."""
    out = []
    while True:
        magic = struct.unpack(">I", c.recv_exact(4))[0]
        check(magic == STRUCTURED_REPLY_MAGIC,
              "reply magic 0x%08x, expected structured chunk 0x668e33ef" % magic)
        flags, typ, ck, ln = struct.unpack(">HHQI", c.recv_exact(16))
        check(ck == cookie, "chunk for cookie %d, expected %d" % (ck, cookie))
        out.append((flags, typ, c.recv_exact(ln) if ln else b""))
        if flags & REPLY_FLAG_DONE:
            return out
        check(len(out) < 1000, "no DONE chunk")

def main():
    c = connect("disk")
    size = c.size
    for what, off, n, fl in (("READ past the end", size - 10, 4096, 0),
                             ("READ with NO_HOLE flag", 0, 4096, CMD_FLAG_NO_HOLE)):
        ck = c.send_request(CMD_READ, off, n, fl, expect_reply=False)
        chunks = raw_chunks(c, ck)
        check(len(chunks) == 1, "%s: %d chunks, expected one error chunk" % (what, len(chunks)))
        flags, typ, pl = chunks[0]
        check(typ in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET),
              "%s: chunk type %d, expected ERROR (32769) or ERROR_OFFSET (32770)" % (what, typ))
        check(len(pl) >= 6, "%s: error payload of %d bytes" % (what, len(pl)))
        err, mlen = struct.unpack(">IH", pl[:6])
        extra = 8 if typ == REPLY_TYPE_ERROR_OFFSET else 0
        check(len(pl) == 6 + mlen + extra, "%s: payload %d bytes, message length %d says %d"
              % (what, len(pl), mlen, 6 + mlen + extra))
        check(err == EINVAL, "%s: error %d, expected EINVAL (22)" % (what, err))
        check(mlen > 0, "%s: empty error message" % what)
        pl[6:6 + mlen].decode("utf-8")
        expect_works(c, what)
    # a good read
    data = os.urandom(12345)
    expect_ok(c.write(1000, data), "write")
    ck = c.send_request(CMD_READ, 1000, 12345, expect_reply=False)
    chunks = raw_chunks(c, ck)
    got = bytearray(12345)
    for flags, typ, pl in chunks:
        check(typ in (REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE), "good READ: chunk type %d" % typ)
        if typ == REPLY_TYPE_OFFSET_DATA:
            o = struct.unpack(">Q", pl[:8])[0]
            check(1000 <= o and o + len(pl) - 8 <= 1000 + 12345, "OFFSET_DATA at %d outside the request" % o)
            got[o - 1000:o - 1000 + len(pl) - 8] = pl[8:]
    check(bytes(got) == data, "good READ: data differs")
    c.disconnect()
    fresh_works("disk")

run(main)
PY
source_alive || fail "server died"
stop_source
pass
