#!/usr/bin/env bash
# nbdinfo sees one export exactly as configured: name, exact size (also a size that is not a
# multiple of 512), a non-empty short description, block sizes 1/4096/32 MiB, and the
# advertised capabilities. How: two sparse disks, `nbdinfo --json` on each, checked in python.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
make_disk "$T/odd.img" $((10 * 1048576 + 12345))
start_source --disk "disk=$T/a.img" --disk "odd=$T/odd.img" --nbd "unix:$SOCK"

check_export() {  # name size
  timeout 20 nbdinfo --json "$(uri "$1")" > "$T/info.json" || fail "nbdinfo $1 failed"
  /usr/bin/python3 - "$T/info.json" "$1" "$2" <<'PY' || fail "nbdinfo --json of export '$1' is wrong (see above)"
import json, sys
j = json.load(open(sys.argv[1]))
name, size = sys.argv[2], int(sys.argv[3])
errs = []
def want(k, v, e):
    if e.get(k) != v:
        errs.append("%s = %r, expected %r" % (k, e.get(k), v))
if j.get("protocol") != "newstyle-fixed": errs.append("protocol %r" % j.get("protocol"))
if j.get("structured") is not True: errs.append("structured replies not negotiated")
ex = j["exports"]
if len(ex) != 1: errs.append("%d exports for one URI" % len(ex))
e = ex[0]
want("export-name", name, e)
want("export-size", size, e)
want("block_size_minimum", 1, e)
want("block_size_preferred", 4096, e)
want("block_size_maximum", 33554432, e)
for k in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_multi_conn",
          "can_df"):
    want(k, True, e)
want("is_read_only", False, e)
if "base:allocation" not in e.get("contexts", []):
    errs.append("contexts %r lack base:allocation" % e.get("contexts"))
d = e.get("description")
if not isinstance(d, str) or not d.strip():
    errs.append("description missing or empty: %r" % d)
elif len(d.encode()) > 256:
    errs.append("description is %d bytes, not a short text" % len(d.encode()))
for x in errs:
    print("  " + x)
sys.exit(1 if errs else 0)
PY
}

check_export disk $((64 * 1048576))
check_export odd $((10 * 1048576 + 12345))
stop_source
pass
