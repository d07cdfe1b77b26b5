#!/usr/bin/env bash
# The TCP listener: with --nbd unix:... and --nbd tcp:127.0.0.1:PORT (a free port),
# `nbdinfo nbd://127.0.0.1:PORT/NAME` reports the export and its size, `nbdinfo --list` over
# TCP lists both exports, and data written over TCP is read back identically over the unix
# socket (both listeners serve the same disk).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 24M
make_disk "$T/b.img" 8M
PORT=$(free_tcp_port)
start_source --disk "disk=$T/a.img" --disk "other=$T/b.img" --nbd "unix:$SOCK" --nbd "tcp:127.0.0.1:$PORT"
TU="nbd://127.0.0.1:$PORT/disk"

# the probe used the unix socket; wait (bounded) for the TCP side too
for _ in $(seq 100); do timeout 5 nbdinfo --size "$TU" > /dev/null 2>&1 && break; sleep 0.05; done
size=$(timeout 20 nbdinfo --size "$TU") || fail "nbdinfo over TCP ($TU) failed"
[ "$size" -eq $((24 << 20)) ] || fail "size over TCP is $size, expected $((24 << 20))"
names=$(timeout 20 nbdinfo --list --json "nbd://127.0.0.1:$PORT/" |
  /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))') ||
  fail "nbdinfo --list over TCP failed"
[ "$names" = "disk other" ] || fail "exports listed over TCP: '$names', expected 'disk other'"

head -c 3M /dev/urandom > "$T/data.bin"
nbdsh_py "$TU" <<PY || fail "write over TCP failed"
h.pwrite(open("$T/data.bin", "rb").read(), 5 << 20)
h.flush()
h.shutdown()
PY
nbdsh_py "$(uri disk)" <<PY || fail "data written over TCP reads back differently over the unix socket"
import sys
if h.pread(3 << 20, 5 << 20) != open("$T/data.bin", "rb").read():
    sys.exit(1)
h.shutdown()
PY
stop_source
pass
