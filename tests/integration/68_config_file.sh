#!/usr/bin/env bash
# The TOML config file: blockrep-source started with only --config takes its state
# directory, listener, journal budget and disks from the file; a flag wins over the file;
# a file with an unknown key or a syntax error is refused with a message naming the file
# and the key or line.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/vm1.img" 32M
cat > "$T/source.toml" <<TOML
state_dir = "$T/cfgstate"
nbd = ["unix:$SOCK"]
journal_max_bytes = "4M"
log_level = "info"

[disks.vm1]
path = "$T/vm1.img"
journal_max_bytes = "3M"
TOML
STATE=$T/cfgstate PROBE_URI="nbd+unix:///?socket=$SOCK" start_source --config "$T/source.toml"
grep -q "disk vm1: $T/vm1.img, 32 MiB; journaling, journal .* of 3.0 MiB" "$SOURCE_LOG" || fail "the per-disk budget from the file is not in effect: $(grep 'disk vm1' "$SOURCE_LOG")"
[ -f "$T/cfgstate/disks/vm1/state.json" ] || fail "state_dir from the file not used"
nbdinfo "$(uri vm1)" > /dev/null || fail "export vm1 from the file is not served"
stop_source

# A flag wins over the file.
STATE=$T/flagstate PROBE_URI="nbd+unix:///?socket=$SOCK" start_source --config "$T/source.toml" --state-dir "$T/flagstate"
[ -f "$T/flagstate/disks/vm1/state.json" ] || fail "--state-dir did not win over the file"
stop_source

expect_refused() {  # label, regex, toml
  local rc=0
  printf '%s\n' "$3" > "$T/bad.toml"
  timeout 10 "$BLOCKREP_SOURCE" --config "$T/bad.toml" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "$1: exit $rc, want a refusal"
  grep -qE "$2" "$T/out" || fail "$1: message does not match /$2/: $(cat "$T/out")"
}
expect_refused "unknown key" "bad\.toml: journal_max: unknown key" 'journal_max = "4M"'
expect_refused "syntax error" "bad\.toml:2:" $'state_dir = "/x"\nnbd = [unix'
expect_refused "disk without path" "bad\.toml: disks\.a\.path: missing" $'[disks.a]\njournal_max_bytes = "4M"'
pass
