#!/usr/bin/env bash
# Bad arguments: the same export name given twice (--disk a=X --disk a=Y), and a --disk
# without NAME= or with an empty name. The server must exit non-zero within 10 s with a
# message naming the problem, and not serve anything.
. "$(dirname "$0")/../lib/common.sh"

expect_refused() {  # label, message regex, args...
  local label=$1 re=$2 rc=0
  shift 2
  timeout 10 "$BLOCKREP_SOURCE" --state-dir "$T/state" "$@" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || fail "$label: server still running after 10 s (accepted the arguments)"
  [ "$rc" -ne 0 ] || fail "$label: exit status 0, expected non-zero"
  grep -qiE "$re" "$T/out" || fail "$label: exit $rc, but the message does not match /$re/: $(head -c 300 "$T/out")"
  [ ! -e "$SOCK" ] || fail "$label: socket $SOCK left behind"
}

make_disk "$T/x.img" 1M
make_disk "$T/y.img" 1M
expect_refused "duplicate disk name" "'?a'?.*(twice|duplicate)|(twice|duplicate).*'?a'?" \
  --disk "a=$T/x.img" --disk "a=$T/y.img" --nbd "unix:$SOCK"
expect_refused "--disk without NAME=" "NAME=PATH|name" --disk "$T/x.img" --nbd "unix:$SOCK"
expect_refused "--disk with an empty name" "NAME=PATH|name" --disk "=$T/x.img" --nbd "unix:$SOCK"
pass
