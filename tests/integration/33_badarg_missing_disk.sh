#!/usr/bin/env bash
# Bad arguments: a --disk whose file does not exist (and one that is a directory). The server
# must exit non-zero within 10 s, name the path in its error message, and leave no socket
# file behind.
. "$(dirname "$0")/../lib/common.sh"

expect_refused() {  # label, message regex, args...
  local label=$1 re=$2 rc=0
  shift 2
  timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" "$@" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || fail "$label: server still running after 10 s (accepted the arguments)"
  [ "$rc" -ne 0 ] || fail "$label: exit status 0, expected non-zero"
  grep -qE "$re" "$T/out" || fail "$label: exit $rc, but the message does not match /$re/: $(head -c 300 "$T/out")"
  [ ! -e "$SOCK" ] || fail "$label: socket $SOCK left behind"
}

make_disk "$T/ok.img" 1M
expect_refused "missing disk file" "$T/nope\.img" --disk "disk=$T/nope.img" --nbd "unix:$SOCK"
expect_refused "missing second disk file" "$T/nope2\.img" --disk "a=$T/ok.img" --disk "b=$T/nope2.img" --nbd "unix:$SOCK"
mkdir "$T/dir"
expect_refused "disk is a directory" "$T/dir" --disk "disk=$T/dir" --nbd "unix:$SOCK"
pass
