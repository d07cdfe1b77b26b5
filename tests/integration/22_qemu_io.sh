#!/usr/bin/env bash
# qemu-io over the NBD URI: write -P (plain, FUA with -f, vectored writev, aio_write), read -P
# verifies each pattern (and a wrong pattern is reported as a failure, so verification is
# real), write -z (with and without -u, i.e. with and without NO_HOLE) reads back as zeroes
# with the neighbouring bytes intact, discard succeeds, flush succeeds.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 16M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
U=$(uri disk)

qio() {  # qemu-io commands...; fails the test if qemu-io fails or reports an error
  local args=() c out
  for c in "$@"; do args+=(-c "$c"); done
  out=$(timeout 60 qemu-io -f raw "${args[@]}" "$U" 2>&1) ||
    fail "qemu-io failed: $(echo "$out" | grep -m1 -iE 'fail|error|mismatch' || echo "$out" | tail -1)"
  if echo "$out" | grep -qiE 'fail|error|mismatch'; then
    fail "qemu-io: $(echo "$out" | grep -m1 -iE 'fail|error|mismatch')"
  fi
}

qio 'write -P 0xab 0 1M' 'write -f -P 0xcd 1M 64k' 'writev -P 0xef 2M 4k 8k 100' \
    'aio_write -P 0x77 5M 64k' 'aio_flush' 'flush'
qio 'read -P 0xab 0 1M' 'read -P 0xcd 1M 64k' 'read -P 0xef 2M 12388' 'read -P 0x77 5M 64k'
qio 'write -z 256k 128k' 'write -z -u 1M 4k' 'discard 512k 64k' 'write -P 0x5a 8M 2M' 'write -z -u 9M 513' 'flush'
qio 'read -P 0xab 0 256k' 'read -P 0 256k 128k' 'read -P 0xab 384k 128k' 'read -P 0xab 576k 448k' \
    'read -P 0 1M 4k' 'read -P 0xcd 1028k 60k' 'read -P 0x5a 8M 1M' 'read -P 0 9M 513' 'read -P 0x5a 9437697 523775'

# a wrong expected pattern must be reported
rc=0
out=$(timeout 60 qemu-io -f raw -c 'read -P 0x12 0 4k' "$U" 2>&1) || rc=$?
echo "$out" | grep -qi 'pattern verification failed' || fail "qemu-io did not report a wrong pattern (exit $rc): $out"
stop_source
pass
