#!/usr/bin/env python3
"""Writes a small seed corpus for build/fuzz/repl_wire_fuzz (core/repl_wire_fuzz.cc): valid
frames of every type, laid out as docs/formats/replication.md says, so that the fuzzer
starts from inputs that reach deep into each decoder. Run: tests/fuzz/make_repl_seeds.py DIR"""
import os
import struct
import sys


def frame(t, payload):
    return b"BRRP" + struct.pack("<HHI", t, 0, len(payload)) + payload


def string(s):
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def item(t, seq, off, length, ts=0, data=b""):
    return struct.pack("<BBHIQQQQ", t, 0, 0, len(data), seq, off, length, ts) + data


out = sys.argv[1]
os.makedirs(out, exist_ok=True)
disk_id = bytes(range(16))
hello = struct.pack("<IIQQ", 1, 0, 1 << 30, 1) + disk_id + string("vm1") + string("0.2.0")
reply = struct.pack("<IIQQQ", 0, 3, 41, 0, 1) + disk_id + string("")
start = struct.pack("<IIQQ", 1, 0, 42, 0)
items = (item(1, 42, 8192, 4096, 1795400000000000000, b"\xab" * 4096) + item(2, 43, 0, 65536) +
         item(3, 44, 1 << 20, 4096) + item(4, 45, 2 << 20, 4096, 0, b"\x01" * 4096) +
         item(5, 45, 3 << 20, 8192) + item(6, 0, 4 << 20, 0) +
         item(7, 0, 5 << 20, 1 << 20, 0, struct.pack("<Q", 0x1234)) + item(8, 46, 0, 0) +
         item(9, 0, 6 << 20, 1 << 20))
batch = struct.pack("<QQIIII", 1, 44, 0, len(items), 9, 0) + items
ack = struct.pack("<QQQII", 1, 44, 0, 3, 0)
hashes = struct.pack("<QIIII", 1 << 20, 1 << 20, 1, 256, 0) + b"\x07" * (256 * 8)
verify = struct.pack("<QII", 0, 1 << 20, 256) + b"\x09" * (256 * 8)
error = struct.pack("<I", 6) + string("No space left on device")
seeds = {
    "hello": frame(1, hello),
    "hello_reply": frame(2, reply),
    "start_batch": frame(3, start) + frame(4, batch),
    "ack": frame(5, ack),
    "hashes": frame(6, hashes),
    "verify": frame(7, verify),
    "error": frame(8, error),
    "ping_pong": frame(9, b"") + frame(10, b""),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
