#!/usr/bin/env bash
# A stand-in for blockrep-source built from nbdkit, to check the integration tests' own logic
# against an independent server:  BLOCKREP_SOURCE=tests/lib/standin-nbdkit.sh tests/integration/run.sh
# Accepts --disk NAME=PATH (repeatable) and one --nbd unix:PATH or tcp:HOST:PORT; serves the
# disks with nbdkit's file plugin in dir= mode (export NAME = a symlink NAME -> PATH). Expect
# differences where the tests check blockrep's documented choices (descriptions, errno values).
set -euo pipefail
disks=() listen=()
while [ $# -gt 0 ]; do
  case $1 in
    --disk) disks+=("$2"); shift 2 ;;
    --nbd) listen+=("$2"); shift 2 ;;
    *) echo "standin: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#disks[@]} -gt 0 ] || { echo "standin: no --disk" >&2; exit 2; }
[ ${#listen[@]} -gt 0 ] || { echo "standin: no --nbd" >&2; exit 2; }
dir=$(mktemp -d /tmp/standin-exports.XXXXXX)
trap 'rm -rf "$dir"' EXIT
for d in "${disks[@]}"; do
  name=${d%%=*} path=${d#*=}
  [ -e "$path" ] || { echo "standin: disk $path: no such file" >&2; exit 1; }
  [ -e "$dir/$name" ] && { echo "standin: duplicate disk name $name" >&2; exit 1; }
  ln -s "$(readlink -f "$path")" "$dir/$name"
done
case ${listen[0]} in
  unix:*) where=(-U "${listen[0]#unix:}") ;;
  tcp:*) hp=${listen[0]#tcp:}; where=(-i "${hp%:*}" -p "${hp##*:}") ;;
  *) echo "standin: bad --nbd spec ${listen[0]}" >&2; exit 2 ;;
esac
nbdkit -f "${where[@]}" --filter=blocksize-policy file dir="$dir" \
  blocksize-minimum=1 blocksize-preferred=4096 blocksize-maximum=33554432 &
pid=$!
trap 'kill -TERM $pid' TERM INT
set +e
wait $pid; rc=$?
if [ $rc -gt 128 ] && kill -0 $pid 2>/dev/null; then wait $pid; rc=$?; fi
exit $rc
