#!/usr/bin/env bash
# While a resync runs, the target's replica image stays exactly the last consistent state:
# a replicated disk (16 MiB of data) loses its target, takes 100 MiB of writes (up to the
# disk's last chunk) past an 8 MiB journal budget (bitmap mode), and gets its target back
# with the source shipping at --bandwidth-limit 16M, so the resync lasts several seconds;
# the sha256 of replica.img, taken again and again while the resync runs (a sample counts
# when the source was resyncing before it and had not yet finished the disk's last chunk,
# hence had not sent SYNC_END, after it), equals the sha256 from before the resync; once
# the resync completes the image equals the disk.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
disk_bytes=$((256 * MiB))
make_disk "$T/disk.img" 256M
prefill "$T/disk.img" 16M
start_target
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}" \
  --journal-max-bytes 8M --bandwidth-limit 16M
wait_disk_state vm1 protected 30
drain vm1
stop_target
img=$(replica_img vm1)
sha_before=$(sha256sum < "$img" | cut -d' ' -f1)

fio --name=more --ioengine=nbd --uri="$(uri vm1)" --rw=write --bs=1m --offset=156M --size=100M \
    --iodepth=4 --refill_buffers --output-format=terse > "$T/fio.out" 2>&1 ||
  { cat "$T/fio.out"; fail "fio could not write 100 MiB"; }
[ "$(state_field vm1 mode)" = bitmap ] || fail "100 MiB past an 8 MiB journal did not switch the disk to its bitmap"

start_target
wait_disk_state vm1 resyncing 20
samples=0
held_max=0
deadline=$((SECONDS + 60))
while [ "$samples" -lt 5 ]; do
  [ $SECONDS -lt $deadline ] || fail "the resync outlasted 60 s"
  [ "$(disk_field vm1 state)" = resyncing ] || break
  sha=$(sha256sum < "$img" | cut -d' ' -f1)
  json=$(status_json "$STATE")
  state=$(_json_field "$json" disks vm1 state)
  done_bytes=$(echo "$json" | /usr/bin/python3 -c 'import json, sys; p = json.load(sys.stdin)["disks"][0]["progress"]; print(p["done_bytes"] if p else -1)')
  # Counts only if SYNC_END cannot have been applied while sha256sum read the image.
  if [ "$state" = resyncing ] && [ "$done_bytes" -ge 0 ] && [ "$done_bytes" -lt "$disk_bytes" ]; then
    [ "$sha" = "$sha_before" ] || fail "the replica image changed during the resync (sample $((samples + 1)), $((done_bytes / MiB)) MiB done)"
    samples=$((samples + 1))
    held=$(replica_field vm1 held_bytes)
    [ "$held" -le "$held_max" ] || held_max=$held
    echo "sample $samples: resync at $((done_bytes / MiB)) MiB of 256, target $(replica_field vm1 state) holding $((held / MiB)) MiB; image unchanged"
  fi
done
[ "$samples" -ge 3 ] || fail "only $samples samples taken while the resync ran (make it slower)"
[ "$held_max" -gt 0 ] || fail "the target held nothing back during the resync"

deadline=$((SECONDS + 60))
until grep -q "resync complete" "$SOURCE_LOG" && [ "$(disk_field vm1 state)" = protected ]; do
  [ $SECONDS -lt $deadline ] || fail "the resync did not complete within 60 s"
  sleep 0.1
done
drain vm1
verify_equal vm1 "$T/disk.img"
sha_after=$(sha256sum < "$img" | cut -d' ' -f1)
[ "$sha_after" = "$(sha256sum < "$T/disk.img" | cut -d' ' -f1)" ] || fail "sha256 of the replica differs from the disk's"
[ "$sha_after" != "$sha_before" ] || fail "the resync changed nothing"
sent=$(disk_field vm1 sync_bytes_sent)
stop_source
stop_target
pass "$samples sha256 samples during the resync equal the pre-resync image (target held up to $((held_max / MiB)) MiB); resync sent $((sent / MiB)) MiB; then equal to the disk"
