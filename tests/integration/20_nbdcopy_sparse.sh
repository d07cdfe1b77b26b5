#!/usr/bin/env bash
# nbdcopy in and out with sparseness preserved. A 64 MiB sparse source file with random data
# in four regions (one unaligned) and holes elsewhere is copied into an export backed by a
# fresh sparse file, then out of the export into a new file. Checks: the copy out is
# byte-identical to the source (cmp); the export's backing file stays sparse (allocated
# <= 2x the source's data and far below its apparent size: holes arrive as WRITE_ZEROES/TRIM
# and are punched); the copy out is sparse too (nbdcopy skips what base:allocation reports as
# holes); and the export's map shows the data regions as data.
. "$(dirname "$0")/../lib/common.sh"

M=1048576
make_disk "$T/src.img" 64M
/usr/bin/python3 - "$T/src.img" <<'PY'
import os, sys
M = 1 << 20
with open(sys.argv[1], "r+b") as f:
    for off, n in ((0, M), (8 * M + 777, M + 500000), (30 * M, 4096), (60 * M, 4 * M)):
        f.seek(off); f.write(os.urandom(n))
PY
data_bytes=$((M + M + 500000 + 4096 + 4 * M))
src_alloc=$(allocated_bytes "$T/src.img")

make_disk "$T/disk.img" 64M
start_source --disk "disk=$T/disk.img" --nbd "unix:$SOCK"
U=$(uri disk)

timeout 60 nbdcopy "$T/src.img" "$U" || fail "nbdcopy into the export failed"
timeout 60 nbdcopy "$U" "$T/out.img" || fail "nbdcopy out of the export failed"
cmp "$T/src.img" "$T/out.img" > /dev/null || fail "copy out differs from the source: $(cmp "$T/src.img" "$T/out.img" 2>&1 | head -1)"

sync
disk_alloc=$(allocated_bytes "$T/disk.img")
out_alloc=$(allocated_bytes "$T/out.img")
apparent=$(apparent_bytes "$T/disk.img")
echo "source: data $data_bytes, allocated $src_alloc; export backing file: allocated $disk_alloc of $apparent; copy out: allocated $out_alloc"
[ "$disk_alloc" -ge "$data_bytes" ] || fail "export backing file allocates $disk_alloc bytes, less than the $data_bytes bytes of data"
[ "$disk_alloc" -le $((2 * src_alloc)) ] || fail "export backing file not sparse: $disk_alloc bytes allocated for $src_alloc in the source ($apparent apparent)"
[ "$out_alloc" -le $((2 * src_alloc)) ] || fail "copy out not sparse: $out_alloc bytes allocated for $src_alloc in the source"

# the export reports the data regions as data and most of the rest as holes
timeout 20 nbdinfo --map --json "$U" > "$T/map.json" || fail "nbdinfo --map failed"
/usr/bin/python3 - "$T/map.json" <<'PY' || fail "base:allocation after nbdcopy is wrong (see above)"
import json, sys
M = 1 << 20
ext = json.load(open(sys.argv[1]))
def kind(pos):
    for e in ext:
        if e["offset"] <= pos < e["offset"] + e["length"]:
            return e["type"]
    print("  offset %d not covered by the map" % pos); sys.exit(1)
for pos in (0, M - 1, 8 * M + 777, 9 * M + 500000, 30 * M, 60 * M, 64 * M - 1):
    if kind(pos) & 1:
        print("  offset %d holds data but is reported as a hole" % pos); sys.exit(1)
holes = sum(e["length"] for e in ext if e["type"] & 1)
if holes < 48 * M:
    print("  only %d bytes reported as holes, expected at least 48 MiB" % holes); sys.exit(1)
PY
stop_source
pass
