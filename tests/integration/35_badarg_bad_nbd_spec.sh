#!/usr/bin/env bash
# Bad arguments: malformed --nbd specs: an unknown scheme, tcp without a port, a non-numeric
# port, a port out of range (99999 and 65536: must not be truncated to some other port), an
# empty unix path, and no --nbd at all. The server must exit non-zero within 10 s with a
# message that quotes the offending spec (or says no listener was given).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/x.img" 1M
expect_refused() {  # label, message regex, args...
  local label=$1 re=$2 rc=0
  shift 2
  timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" "$@" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || fail "$label: server still running after 10 s (accepted the arguments; it said: $(grep -m1 -i listening "$T/out"))"
  [ "$rc" -ne 0 ] || fail "$label: exit status 0, expected non-zero"
  grep -qiE "$re" "$T/out" || fail "$label: exit $rc, but the message does not match /$re/: $(head -c 300 "$T/out")"
}
for spec in bogus:/x "tcp:127.0.0.1" "tcp:127.0.0.1:80x" "tcp:127.0.0.1:99999" "tcp:127.0.0.1:65536" "unix:"; do
  re=$(printf '%s' "$spec" | sed 's/[.[\*^$]/\\&/g')
  expect_refused "--nbd $spec" "$re" --disk "d=$T/x.img" --nbd "$spec"
done
expect_refused "no --nbd" "nbd|listen" --disk "d=$T/x.img"
pass
