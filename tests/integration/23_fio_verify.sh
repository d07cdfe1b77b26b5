#!/usr/bin/env bash
# fio's nbd engine with verify=crc32c: 2 jobs (2 connections), each on its own 64 MiB range,
# mixed block sizes (4k/16k/64k/1m), iodepth 32, randwrite with do_verify (every block
# written is read back and checked). Then the server is restarted and a read-only
# verify_only pass checks all 128 MiB again. Finally one byte of the backing file is changed
# and the verify_only pass must FAIL, which shows the verification really reads the export.
# Each pass must report zero errors and move the full amount of data.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 256M
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
U=$(uri disk)

fio_args=(--name=v --ioengine=nbd "--uri=$U" --rw=randwrite --bssplit=4k/40:16k/30:64k/20:1m/10
          --iodepth=32 --numjobs=2 --size=64M --offset_increment=64M --verify=crc32c
          --verify_fatal=1 --randrepeat=1 --randseed=4242 --verify_state_save=0 --output-format=json)

check_fio() {  # json what expect_write_bytes (-1: any; verify_only reports planned writes) expect_read_bytes
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
j = json.loads(raw[raw.index("{"):])
what, w_exp, r_exp = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bad = []
for job in j["jobs"]:
    if job["error"]:
        bad.append("job %s error %d" % (job["jobname"], job["error"]))
    w, r = job["write"]["io_bytes"], job["read"]["io_bytes"]
    if (w_exp >= 0 and w != w_exp) or r != r_exp:
        bad.append("job %s wrote %d read %d bytes, expected %d and %d" % (job["jobname"], w, r, w_exp, r_exp))
if len(j["jobs"]) != 2:
    bad.append("%d jobs reported, expected 2" % len(j["jobs"]))
if bad:
    print("fio %s: %s" % (what, "; ".join(bad))); sys.exit(1)
PY
}

rc=0
timeout 120 fio "${fio_args[@]}" --do_verify=1 --output="$T/w.json" > "$T/w.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/w.out"; fail "fio randwrite+verify exited $rc"; }
check_fio "$T/w.json" "randwrite+verify" $((64 << 20)) $((64 << 20)) || fail "fio randwrite+verify reported problems (see above)"

stop_source
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
timeout 120 fio "${fio_args[@]}" --verify_only --output="$T/r.json" > "$T/r.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/r.out"; fail "fio verify_only pass after restart exited $rc"; }
check_fio "$T/r.json" "verify_only" -1 $((64 << 20)) || fail "fio verify_only pass reported problems (see above)"
stop_source

# corrupt one byte in the second job's range: the verify pass must notice
printf '\xff' | dd of="$T/a.img" bs=1 seek=$((64 * 1048576 + 5 * 1048576 + 4000)) conv=notrunc status=none
printf '\x00' | dd of="$T/a.img" bs=1 seek=$((64 * 1048576 + 5 * 1048576 + 4001)) conv=notrunc status=none
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
rc=0
timeout 120 fio "${fio_args[@]}" --verify_only --output="$T/c.json" > "$T/c.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "fio verify_only did not detect a corrupted byte in the backing file"
grep -qiE 'verify|crc32c' "$T/c.out" "$T/c.json" || { cat "$T/c.out"; fail "fio failed, but not with a verify error (see above)"; }
stop_source
pass
