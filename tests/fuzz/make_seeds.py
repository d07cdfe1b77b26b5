#!/usr/bin/env python3
"""Writes the seed corpus for build/fuzz/nbd_fuzz: a few well-formed client conversations
(GO with structured replies and base:allocation, EXPORT_NAME, INFO + LIST + ABORT) followed by
requests, so the fuzzer starts from inputs that reach the transmission phase."""
import os
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def name_go(name, infos=()):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + b"".join(
        struct.pack(">H", i) for i in infos)


def meta(name, queries):
    n = name.encode()
    out = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        out += struct.pack(">I", len(q)) + q.encode()
    return out


def req(typ, off, length, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, length) + payload


seeds = {
    "go_structured": struct.pack(">I", 1) + opt(8) + opt(10, meta("disk0", ["base:allocation"]))
    + opt(7, name_go("disk0", (1, 2, 3))) + req(0, 0, 4096) + req(1, 4096, 8, 1, 2, b"A" * 8)
    + req(7, 0, 65536, 8, 3) + req(6, 0, 4096, 2 | 16, 4) + req(4, 8192, 4096, 0, 5)
    + req(3, 0, 0, 0, 6) + req(2, 0, 0),
    "export_name": struct.pack(">I", 3) + opt(1, b"disk0") + req(0, 0, 512)
    + req(1, (1 << 20) - 4, 8, 0, 2, b"B" * 8) + req(99, 0, 1),
    "info_list_abort": struct.pack(">I", 1) + opt(3) + opt(6, name_go("d", (0, 3)))
    + opt(9, meta("d", [])) + opt(0x1234, b"xx") + opt(2),
}

out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                             "nbd_fuzz_corpus")
os.makedirs(out_dir, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)
