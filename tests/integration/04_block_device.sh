#!/usr/bin/env bash
# A block device (a loop device over a 24 MiB image) is served with its real size (a block
# device's st_size is 0, so the server must ask the device), and writes, write-zeroes and reads
# through NBD reach the device: qemu-io writes/zeroes/verifies over NBD; after a clean stop the
# bytes are read back from the device itself (O_DIRECT) and compared.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for losetup"
make_disk "$T/backing.img" 24M
LOOP=$(losetup -f --show "$T/backing.img") || fail "losetup failed"
track_loop "$LOOP"
start_source --disk "blk=$LOOP" --nbd "unix:$SOCK"
U=$(uri blk)

size=$(timeout 20 nbdinfo --size "$U") || fail "nbdinfo --size failed"
[ "$size" -eq $((24 * 1048576)) ] || fail "block device export size $size, expected $((24 * 1048576))"

out=$(timeout 60 qemu-io -f raw \
  -c 'write -P 0x5a 2M 1M' -c 'write -z 2304K 256K' -c 'write -P 0x33 23M 1M' \
  -c 'read -P 0x5a 2M 256K' -c 'read -P 0 2304K 256K' -c 'read -P 0x5a 2560K 512K' \
  -c 'read -P 0x33 23M 1M' "$U" 2>&1) || fail "qemu-io over NBD on a block device failed: $(echo "$out" | grep -i -m1 -E 'fail|error')"
echo "$out" | grep -qiE 'fail|error' && fail "qemu-io reported: $(echo "$out" | grep -i -m1 -E 'fail|error')"
stop_source

# What the device holds now.
dd if="$LOOP" of="$T/got.bin" bs=1M skip=2 count=1 iflag=direct status=none
{ head -c 256K /dev/zero | tr '\0' '\132'; head -c 256K /dev/zero; head -c 512K /dev/zero | tr '\0' '\132'; } > "$T/want.bin"
cmp -s "$T/got.bin" "$T/want.bin" || fail "device bytes at 2 MiB differ from what was written through NBD"
dd if="$LOOP" of="$T/tail.bin" bs=1M skip=23 count=1 iflag=direct status=none
head -c 1M /dev/zero | tr '\0' '\063' | cmp -s - "$T/tail.bin" || fail "device's last MiB differs from what was written through NBD"
pass
