#!/usr/bin/env bash
# `nbdinfo --map` (NBD_CMD_BLOCK_STATUS, base:allocation) reports holes and data of a sparse
# disk: data written into the backing file before start (dd at 1 MiB, 64 KiB) and through NBD
# after start (at 8 MiB, 1 MiB) show as data (type 0) at exactly those ranges; everything else,
# including the file's tail, as hole,zero (type 3); the extents tile the whole export.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 32M
dd if=/dev/urandom of="$T/a.img" bs=64K count=1 seek=16 conv=notrunc status=none
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
U=$(uri disk)
timeout 30 qemu-io -f raw -c "write -P 0x5a 8M 1M" "$U" > /dev/null || fail "qemu-io write through NBD failed"

timeout 20 nbdinfo --map --json "$U" > "$T/map.json" || fail "nbdinfo --map failed"
/usr/bin/python3 - "$T/map.json" <<'PY' || fail "base:allocation map is wrong (see above)"
import json, sys
m = json.load(open(sys.argv[1]))
size = 32 << 20
# merge adjacent extents of the same type (a server may split them)
ext = []
for e in m:
    if ext and ext[-1][2] == e["type"] and ext[-1][0] + ext[-1][1] == e["offset"]:
        ext[-1][1] += e["length"]
    else:
        ext.append([e["offset"], e["length"], e["type"]])
want = [[0, 1 << 20, 3], [1 << 20, 64 << 10, 0], [(1 << 20) + (64 << 10), (7 << 20) - (64 << 10), 3],
        [8 << 20, 1 << 20, 0], [9 << 20, size - (9 << 20), 3]]
pos = 0
for o, l, t in ext:
    if o != pos:
        print("  extents do not tile the export: gap/overlap at %d" % pos); sys.exit(1)
    pos = o + l
if pos != size:
    print("  extents end at %d, export size %d" % (pos, size)); sys.exit(1)
if ext != want:
    print("  map %r\n  expected %r" % (ext, want)); sys.exit(1)
PY
stop_source
pass
