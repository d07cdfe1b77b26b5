#!/usr/bin/env bash
# Crash safety through NBD: the daemon is killed with SIGKILL at random moments while fio
# (nbd engine, fsync every 16 writes) and a write tracker (tests/lib/crash_writer.py, which
# logs exactly which writes and flushes were acknowledged) write through it; then restarted.
# After every restart:
#   - the journal verifies and the backing disk holds the journal's view
#     (blockrep journal verify --backing);
#   - every acknowledged write is present (crash_writer.py check; a killed process keeps the
#     page cache, so this covers "every write acknowledged before the last completed flush");
#   - a region fio wrote and flushed before the crashes still verifies (fio --verify_only).
# CRASH_ITERATIONS (default 6) rounds; CRASH_SEED picks the kill moments (printed; set it to
# replay a run).
. "$(dirname "$0")/../lib/common.sh"

iterations=${CRASH_ITERATIONS:-6}
seed=${CRASH_SEED:-$(( $(date +%s) % 100000 ))}
echo "crash seed: $seed (CRASH_SEED=$seed CRASH_ITERATIONS=$iterations to replay)"
RANDOM=$seed

MiB=$((1 << 20))
make_disk "$T/disk.img" 192M
# No shipper reclaims the journal yet: give it room for every round, so each crash hits a
# journaling disk (checked below) rather than one that switched to its bitmap.
args=(--disk "disk=$T/disk.img" --nbd "unix:$SOCK" --journal-max-bytes 3G)
URI=$(uri disk)
fio_common=(--ioengine=nbd --uri="$URI" --bs=4k --verify=crc32c --verify_state_save=0
            --output-format=terse)

start_source "${args[@]}"
# Region A [0, 64 MiB): written, flushed and finished before any crash.
fio --name=before "${fio_common[@]}" --rw=write --size=64M --offset=0 --iodepth=8 \
    --end_fsync=1 --do_verify=0 > "$T/fio-a.out" 2>&1 || { cat "$T/fio-a.out"; fail "fio region A"; }

logs=""
for i in $(seq 1 "$iterations"); do
  # Region B [64, 128 MiB): fio random writes with periodic flushes, killed mid-run.
  fio --name=crash "${fio_common[@]}" --rw=randwrite --size=64M --offset=64M --iodepth=16 \
      --fsync=16 --do_verify=0 --randseed=$((seed + i)) --time_based --runtime=60 --rate_iops=3000 \
      > "$T/fio-b.$i.out" 2>&1 &
  fio_pid=$!
  track_pid "$fio_pid"
  # Region C [128, 192 MiB): the tracker, whose log says what was acknowledged.
  PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$LIBDIR/crash_writer.py" write "$URI" "$T/cw.$i.log" \
      --first-byte $((128 * MiB)) --blocks 8192 --depth 16 --flush-every 32 --rate 4000 \
      --seed $((seed + i)) --id-base $((i * 10000000)) > "$T/cw.$i.out" 2>&1 &
  cw_pid=$!
  track_pid "$cw_pid"
  # A random moment 0.3 to 2.3 s into the writes.
  delay_ms=$((300 + RANDOM % 2000))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill9_source
  reap_client "$fio_pid"                # fio fails (or spins: see reap_client): its server is gone
  wait "$cw_pid" || { cat "$T/cw.$i.out"; fail "round $i: crash_writer failed"; }
  logs=${logs:+$logs,}$T/cw.$i.log

  start_source "${args[@]}"
  grep -q "did not stop cleanly" "$SOURCE_LOG" || fail "round $i: restart did not notice the crash"
  [ "$(state_field disk mode)" = journaling ] || fail "round $i: the disk left journaling: $(state_field disk reason)"
  replayed=$(grep -o 'replayed [0-9]* journal records' "$SOURCE_LOG" || echo "replayed 0 journal records")
  journal_verify disk "$T/disk.img"
  out=$(PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$LIBDIR/crash_writer.py" check "$URI" "$logs" \
          --first-byte $((128 * MiB)) --blocks 8192 2>&1) || { echo "$out"; fail "round $i (kill at ${delay_ms} ms): acknowledged writes lost"; }
  fio --name=before "${fio_common[@]}" --rw=write --size=64M --offset=0 --iodepth=8 \
      --verify_only > "$T/fio-va.out" 2>&1 || { cat "$T/fio-va.out"; fail "round $i: region A no longer verifies"; }
  echo "round $i: killed at ${delay_ms} ms; $replayed; $(echo "$out" | head -n 1 | sed 's/^crash_writer: //')"
done

stop_source
[ "$(state_field disk clean_shutdown)" = true ] || fail "clean_shutdown not recorded after SIGTERM"
journal_verify disk "$T/disk.img"
pass "$iterations crashes, nothing acknowledged was lost (seed $seed)"
