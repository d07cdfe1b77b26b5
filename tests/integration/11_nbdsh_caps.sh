#!/usr/bin/env bash
# The capabilities libnbd sees after NBD_OPT_GO: fixed newstyle with structured replies,
# base:allocation negotiated, can_multi_conn/can_flush/can_fua/can_trim/can_zero/
# can_fast_zero/can_df true, not read-only, CACHE not advertised (docs/formats/nbd.md), block
# sizes 1/4096/32 MiB, and (with full info) the export name and a description.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
start_source --disk "vol1=$T/a.img" --nbd "unix:$SOCK"

nbdsh_plain <<PY || fail "capabilities are wrong (see above)"
import sys
h = nbd.NBD()
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.set_full_info(True)
h.connect_uri("$(uri vol1)")
errs = []
def want(what, got, exp):
    if got != exp:
        errs.append("%s = %r, expected %r" % (what, got, exp))
want("protocol", h.get_protocol(), "newstyle-fixed")
want("structured replies", h.get_structured_replies_negotiated(), True)
want("can_meta_context(base:allocation)", h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), True)
for cap in ("can_multi_conn", "can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_df"):
    want(cap, getattr(h, cap)(), True)
want("is_read_only", h.is_read_only(), False)
want("can_cache", h.can_cache(), False)
want("block size minimum", h.get_block_size(nbd.SIZE_MINIMUM), 1)
want("block size preferred", h.get_block_size(nbd.SIZE_PREFERRED), 4096)
want("block size maximum", h.get_block_size(nbd.SIZE_MAXIMUM), 33554432)
want("canonical export name", h.get_canonical_export_name(), "vol1")
d = h.get_export_description()
if not d or len(d.encode()) > 256:
    errs.append("description %r is not a short non-empty text" % d)
want("size", h.get_size(), 16 << 20)
for e in errs:
    print("  " + e)
h.shutdown()
sys.exit(1 if errs else 0)
PY
stop_source
pass
