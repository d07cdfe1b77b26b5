"""Crash workload: random block writes with unique contents through libnbd, flushes every N
writes, and a log of exactly which writes and flushes the server acknowledged.

  crash_writer.py write URI LOG --blocks N --block-bytes B --depth D --flush-every F --seed S
      Writes until the server goes away (it is killed by the test) or --max-writes; every
      block written carries (magic, write id, offset) in its first 24 bytes and a body
      derived from them. LOG gets one line per acknowledged write ("W id offset") and per
      acknowledged flush ("F id-of-last-write-acked-before-the-flush-was-sent"), flushed to
      the file as they happen.
  crash_writer.py check URI LOG[,LOG...] --blocks N --block-bytes B
      (several runs' logs, comma-separated, when runs with distinct --id-base wrote the same
      region)
      Reads every block back and checks, for each block, that it holds the newest
      acknowledged write to it, or a write to it that was sent later and never acknowledged
      (in flight at the crash), or (if no write to it was acknowledged) zeroes or such a
      write. Prints a verdict line; exit 1 on any lost acknowledged write.

Writes acknowledged before the last completed flush must be present after any crash; a
process kill (as opposed to power loss) keeps the page cache, so every acknowledged write
must be present, and that is what is checked.
"""
import argparse
import os
import random
import struct
import sys
import time

import nbd

MAGIC = 0x424c4b52455043  # "BLKREPC"
HDR = struct.Struct("<QQQ")


def block_bytes(write_id, offset, size):
    head = HDR.pack(MAGIC, write_id, offset)
    rnd = random.Random(write_id * 1000003 + offset)
    return head + rnd.randbytes(size - len(head))


def do_write(a):
    rnd = random.Random(a.seed)
    h = nbd.NBD()
    h.connect_uri(a.uri)
    log = open(a.log, "w", buffering=1)
    sent_ids = []  # every write id sent, with its offset, in order
    state = {"next": a.id_base + 1, "acked_max": 0, "inflight": 0, "dead": False, "writes_since_flush": 0}

    def on_write(wid, off):
        def cb(err):
            state["inflight"] -= 1
            if err.value == 0:
                log.write("W %d %d\n" % (wid, off))
                state["acked_max"] = max(state["acked_max"], wid)
            else:
                state["dead"] = True
            return 1
        return cb

    def on_flush(upto):
        def cb(err):
            state["inflight"] -= 1
            if err.value == 0:
                log.write("F %d\n" % upto)
            else:
                state["dead"] = True
            return 1
        return cb

    started = time.monotonic()
    try:
        while not state["dead"] and (a.max_writes == 0 or state["next"] <= a.id_base + a.max_writes):
            while state["inflight"] < a.depth and not state["dead"]:
                if state["writes_since_flush"] >= a.flush_every:
                    state["writes_since_flush"] = 0
                    # Everything acknowledged so far is covered by this flush.
                    h.aio_flush(completion=on_flush(state["acked_max"]))
                    state["inflight"] += 1
                    continue
                if a.rate:  # pace: write n may not start before n / rate seconds
                    ahead = (state["next"] - a.id_base) / a.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(min(ahead, 0.01))
                        break
                wid = state["next"]
                state["next"] += 1
                off = a.first_byte + rnd.randrange(a.blocks) * a.block_bytes
                log.write("S %d %d\n" % (wid, off))
                h.aio_pwrite(block_bytes(wid, off, a.block_bytes), off,
                             completion=on_write(wid, off))
                state["inflight"] += 1
                state["writes_since_flush"] += 1
            h.poll(10 if a.rate else -1)
        while state["inflight"] > 0 and not state["dead"]:  # --max-writes reached: drain
            h.poll(-1)
    except nbd.Error as e:
        log.write("# connection ended: %s\n" % e)
    log.close()
    print("crash_writer: sent %d writes" % (state["next"] - 1 - a.id_base))


def do_check(a):
    sent = {}        # wid -> offset
    acked = set()
    last_flush = 0
    lines = []
    for path in a.log.split(","):
        lines.extend(open(path))
    for line in lines:
        p = line.split()
        if not p or p[0] == "#":
            continue
        if p[0] == "S":
            sent[int(p[1])] = int(p[2])
        elif p[0] == "W":
            acked.add(int(p[1]))
        elif p[0] == "F":
            last_flush = max(last_flush, int(p[1]))
    newest_acked = {}    # offset -> newest acked wid
    for wid in acked:
        off = sent[wid]
        if wid > newest_acked.get(off, 0):
            newest_acked[off] = wid
    h = nbd.NBD()
    h.connect_uri(a.uri)
    bad = []
    checked = 0
    for blk in range(a.blocks):
        off = a.first_byte + blk * a.block_bytes
        data = h.pread(a.block_bytes, off)
        magic, wid, woff = HDR.unpack(bytes(data[:HDR.size]))
        want = newest_acked.get(off, 0)
        if magic == MAGIC:
            ok = (woff == off and sent.get(wid) == off and
                  data == block_bytes(wid, off, a.block_bytes) and
                  (wid == want or (wid > want and wid not in acked)))
        else:
            ok = want == 0 and data == bytes(a.block_bytes)
        if want:
            checked += 1
        if not ok:
            bad.append((off, want, wid if magic == MAGIC else None))
    h.shutdown()
    print("crash_writer: %d writes sent, %d acknowledged, last flush covered write %d; "
          "%d blocks hold an acknowledged write" % (len(sent), len(acked), last_flush, checked))
    if bad:
        for off, want, got in bad[:10]:
            print("  block at %d: want write %d%s, found %s" % (
                off, want, " (before the last flush)" if want and want <= last_flush else "",
                "write %d" % got if got is not None else "something else"))
        print("crash_writer: LOST %d acknowledged write(s)" % len(bad))
        sys.exit(1)
    print("crash_writer: every acknowledged write is present")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "check"])
    ap.add_argument("uri")
    ap.add_argument("log")
    ap.add_argument("--blocks", type=int, required=True)
    ap.add_argument("--block-bytes", type=int, default=4096)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--flush-every", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-writes", type=int, default=0)
    ap.add_argument("--rate", type=int, default=0,
                    help="at most this many writes per second (0: as fast as it goes)")
    ap.add_argument("--first-byte", type=int, default=0,
                    help="the region written starts here")
    ap.add_argument("--id-base", type=int, default=0,
                    help="write ids start after this (unique across runs on one disk)")
    a = ap.parse_args()
    do_write(a) if a.mode == "write" else do_check(a)


if __name__ == "__main__":
    main()
