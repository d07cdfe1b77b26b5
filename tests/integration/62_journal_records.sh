#!/usr/bin/env bash
# Every change is journaled: a write, a FUA write, a write-zeroes, a trim and a flush through
# NBD each leave their record (kind, offset, length, FUA flag; the flush a checkpoint), in
# seq order, as `blockrep journal dump --json` shows; `journal verify --backing` finds every
# record intact and the disk holding the journal's view; a clean stop records a clean
# shutdown and a restart then replays nothing.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
nbdsh_py "$(uri disk)" <<'PY' || fail "nbdsh writes failed"
import os
h.pwrite(os.urandom(8192), 0)
h.pwrite(os.urandom(4096), 1 << 20, nbd.CMD_FLAG_FUA)
h.zero(65536, 2 << 20)
h.trim(4096, 3 << 20)
h.flush()
PY
"$BLOCKREP_CLI" journal dump --state-dir "$STATE" --disk disk --json > "$T/dump.json"
/usr/bin/python3 - "$T/dump.json" <<'PY' || fail "journal dump does not show the changes (see above)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["corruption"] is None, d["corruption"]
recs = d["records"]
seqs = [r["seq"] for r in recs]
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "seqs not increasing: %s" % seqs
changes = [(r["kind"], r["offset"], r["length"], r["fua"]) for r in recs if r["kind"] != "marker"]
want = [("write", 0, 8192, False), ("write", 1 << 20, 4096, True),
        ("zero", 2 << 20, 65536, False), ("trim", 3 << 20, 4096, False)]
if changes != want:
    print("changes in the journal: %s\nexpected: %s" % (changes, want)); sys.exit(1)
last_change = max(r["seq"] for r in recs if r["kind"] != "marker")
cps = [r for r in recs if r.get("marker") == "checkpoint" and r["seq"] > last_change]
if not cps:
    print("no flush checkpoint after the changes: %s" % recs); sys.exit(1)
PY
journal_verify disk "$T/a.img"
stop_source
[ "$(state_field disk clean_shutdown)" = true ] || fail "a SIGTERM stop did not record a clean shutdown"
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
if grep -q "replayed\|did not stop cleanly" "$SOURCE_LOG"; then fail "a clean restart replayed or warned: $(cat "$SOURCE_LOG")"; fi
stop_source
pass
