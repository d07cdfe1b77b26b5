#!/usr/bin/env bash
# Replication under load: fio (nbd engine, random writes of mixed sizes, verify=crc32c, two
# jobs) writes to blockrep-source for REPL_FIO_SECONDS (default 60) while it replicates to
# blockrep-target over TLS; then `blockrep drain` returns, `blockrep verify` finds no
# difference, the replica's bytes equal the source's, and fio verifies its data in the
# replica image itself (fio's file engine).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

seconds=${REPL_FIO_SECONDS:-60}
make_disk "$T/disk.img" 256M
replicate_disk

# The two jobs write disjoint halves (offset_increment): two jobs verifying one region
# race each other (one reads a block while the other rewrites it) on any server.
fio_args=(--rw=randwrite --bssplit=4k/60:16k/20:64k/15:1m/5 --size=96M --offset=16M --offset_increment=96M
          --verify=crc32c --verify_state_save=0 --numjobs=2 --group_reporting
          --randseed=9090 --output-format=terse)
fio --name=load --ioengine=nbd --uri="$(uri vm1)" --iodepth=16 "${fio_args[@]}" \
    --do_verify=1 --time_based --runtime="$seconds" > "$T/fio.out" 2>&1 ||
  { cat "$T/fio.out"; fail "fio against blockrep-source failed"; }
written=$(awk -F';' '{w += $47} END {print w}' "$T/fio.out")  # KiB written (terse field 47)
echo "fio wrote $((written / 1024)) MiB in ${seconds}s"
[ "$written" -gt 0 ] || fail "fio wrote nothing"

drain vm1 120
verify_equal vm1 "$T/disk.img"
# fio's own check of the replica: every block it wrote carries its header and crc32c.
fio --name=load --ioengine=psync --filename="$(replica_img vm1)" --iodepth=1 "${fio_args[@]}" \
    --verify_only --time_based=0 > "$T/fio-replica.out" 2>&1 ||
  { cat "$T/fio-replica.out"; fail "fio does not verify the replica image"; }

p99=$(disk_field vm1 rpo_p99_ms)
stop_source
stop_target
pass "$((written / 1024)) MiB written in ${seconds}s replicated; verify equal; RPO p99 ${p99} ms"
