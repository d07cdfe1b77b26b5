#!/usr/bin/env bash
# qemu-img against the export: `qemu-img info` reports the virtual size; `qemu-img convert -n
# -O raw` of a qcow2 image (data written at several offsets with qemu-io) into the export;
# `qemu-img compare` of the qcow2 image with the export reports identical (exit 0); the same
# for a raw image into a second export; and compare does notice (exit 1) after one byte of
# the export is changed, so the comparison really reads the export.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 64M
make_disk "$T/b.img" 32M
start_source --disk "vm=$T/a.img" --disk "raw=$T/b.img" --nbd "unix:$SOCK"
UA=$(uri vm)
UB=$(uri raw)

vsize=$(timeout 20 qemu-img info --output=json "$UA" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])') || fail "qemu-img info failed"
[ "$vsize" -eq $((64 << 20)) ] || fail "qemu-img info: virtual size $vsize, expected $((64 << 20))"

qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
timeout 30 qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 10M 3M' \
  -c 'write -P 0x33 33M 4k' -c 'write -P 0x44 63M 1M' "$T/src.qcow2" > /dev/null
timeout 60 qemu-img convert -n -f qcow2 -O raw "$T/src.qcow2" "$UA" || fail "qemu-img convert qcow2 -> export failed"
timeout 60 qemu-img compare -q -f qcow2 -F raw "$T/src.qcow2" "$UA" ||
  fail "qemu-img compare: qcow2 source and export differ after convert (exit $?)"

head -c 32M /dev/urandom > "$T/src.raw"
timeout 60 qemu-img convert -n -f raw -O raw "$T/src.raw" "$UB" || fail "qemu-img convert raw -> export failed"
timeout 60 qemu-img compare -q -f raw -F raw "$T/src.raw" "$UB" ||
  fail "qemu-img compare: raw source and export differ after convert (exit $?)"

# one changed byte must be noticed
timeout 30 qemu-io -f raw -c 'write -P 0x99 20M 1' "$UB" > /dev/null
rc=0
timeout 60 qemu-img compare -q -f raw -F raw "$T/src.raw" "$UB" || rc=$?
[ "$rc" -eq 1 ] || fail "qemu-img compare after changing one byte of the export: exit $rc, expected 1 (different)"
stop_source
pass
