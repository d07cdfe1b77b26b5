#!/usr/bin/env bash
# Initial replication of a disk that already holds data, while a client writes to it: the
# copy's progress (bytes done, total, rate, ETA) shows in `blockrep status`; holes and
# all-zero blocks are not sent and stay holes on the target; writes made during the copy
# are neither lost nor reordered in effect (the replica ends equal to the disk, and fio
# verifies its blocks in the replica).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 512M
# Data in [0, 96 MiB) and [256, 320 MiB); the rest is holes, plus 8 MiB of written zeroes.
prefill "$T/disk.img" 96M
prefill "$T/disk.img" 64M 256M
dd if=/dev/zero of="$T/disk.img" bs=1M seek=400 count=8 conv=notrunc,fsync status=none
data_bytes=$((160 * MiB))

start_target
# A bandwidth cap stretches the copy over a few seconds, so it runs while fio writes.
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}" --bandwidth-limit 48M
wait_disk_state vm1 initial-replication 10
fio --name=during --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bs=16k --size=64M \
    --offset=60M --iodepth=8 --rate=8m --verify=crc32c --verify_state_save=0 --do_verify=0 \
    --randseed=93 --output-format=terse > "$T/fio.out" 2>&1 &
fio_pid=$!
track_pid "$fio_pid"
sleep 1
progress=$(status_json "$STATE" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["disks"][0]
p = d["progress"]
assert d["state"] == "initial-replication", d["state"]
assert p["total_bytes"] == 512 << 20, p
assert 0 < p["done_bytes"] < p["total_bytes"], p
assert p["rate_bytes_per_s"] > 0 and p["eta_s"] is not None, p
print("%d of %d bytes, %d B/s, ETA %s s" % (p["done_bytes"], p["total_bytes"], p["rate_bytes_per_s"], p["eta_s"]))
') || fail "no progress in status during the copy"
echo "progress: $progress"
"$BLOCKREP_CLI" status --state-dir "$STATE" | grep -q "initial replication [0-9]*%.*ETA" ||
  fail "the status table does not show the copy's progress"
wait "$fio_pid" || { cat "$T/fio.out"; fail "fio failed during the copy"; }
wait_disk_state vm1 protected 60
drain vm1
verify_equal vm1 "$T/disk.img"
fio --name=during --ioengine=psync --filename="$(replica_img vm1)" --rw=randwrite --bs=16k \
    --size=64M --offset=60M --verify=crc32c --verify_state_save=0 --randseed=93 --verify_only \
    --output-format=terse > "$T/fio-v.out" 2>&1 || { cat "$T/fio-v.out"; fail "fio does not verify the replica"; }

sent=$(disk_field vm1 sync_bytes_sent)
alloc=$(allocated_bytes "$(replica_img vm1)")
echo "copy sent $((sent / MiB)) MiB of sync data for $((data_bytes / MiB)) MiB of data; replica allocates $((alloc / MiB)) MiB of 512 MiB"
[ "$sent" -le $((data_bytes + 64 * MiB)) ] || fail "the copy sent $sent bytes: holes or zero blocks were sent"
[ "$alloc" -le $((data_bytes + 80 * MiB)) ] || fail "the replica allocates $alloc bytes: it did not stay sparse"
stop_source
stop_target
pass "initial copy with progress while writing; sent $((sent / MiB)) MiB; replica sparse ($((alloc / MiB)) MiB allocated); equal"
