#!/usr/bin/env bash
# `nbdinfo --list` (NBD_OPT_LIST, then INFO per export) shows every configured export and
# nothing else: three --disk arguments of different sizes, each listed once with its own size.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
make_disk "$T/b.img" 48M
make_disk "$T/c.img" 1M
start_source --disk "alpha=$T/a.img" --disk "beta=$T/b.img" --disk "gamma=$T/c.img" --nbd "unix:$SOCK"

timeout 20 nbdinfo --json --list "nbd+unix:///?socket=$SOCK" > "$T/list.json" || fail "nbdinfo --list failed"
/usr/bin/python3 - "$T/list.json" <<'PY' || fail "nbdinfo --list output is wrong (see above)"
import json, sys
j = json.load(open(sys.argv[1]))
got = {e["export-name"]: e.get("export-size") for e in j["exports"]}
want = {"alpha": 16 << 20, "beta": 48 << 20, "gamma": 1 << 20}
names = [e["export-name"] for e in j["exports"]]
if sorted(names) != sorted(want) or got != want:
    print("  listed %r, expected %r" % (got, want))
    sys.exit(1)
PY
stop_source
pass
