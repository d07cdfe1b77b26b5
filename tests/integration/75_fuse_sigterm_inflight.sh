#!/usr/bin/env bash
# SIGTERM during active FUSE I/O: a writer with 8 threads keeps 64 KiB pwrites going to the
# FUSE file (a unique pattern per write, never rewriting an offset) and logs each write the
# kernel acknowledged. Once 300 are acknowledged the daemon gets SIGTERM. It must exit 0 within
# 20 s, the writer must see its writes fail (not hang) and stop, and every acknowledged write
# must be in the backing file afterwards, byte for byte.
. "$(dirname "$0")/../lib/common.sh"

[ "$(id -u)" -eq 0 ] || fail "needs root for FUSE"
make_disk "$T/disk.img" 256M
mkdir "$T/fuse"
track_mount "$T/fuse"
start_source --disk "disk=$T/disk.img" --nbd "unix:$SOCK" --fuse "$T/fuse" --state-dir "$T/state"

cat > "$T/writer.py" <<'PY'
import os, struct, sys, threading
path, acklog = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
size = os.fstat(fd).st_size
log = open(acklog, "w", buffering=1)
lock = threading.Lock()
next_seq = [0]
def pattern(seq):
    return struct.pack(">Q", seq + 1) * 8192          # 64 KiB
def run():
    while True:
        with lock:
            seq = next_seq[0]
            next_seq[0] += 1
        if seq * 65536 >= size:
            with lock: log.write("finished before SIGTERM\n")
            return
        try:
            n = os.pwrite(fd, pattern(seq), seq * 65536)
        except OSError as e:
            with lock: log.write("error %d %s\n" % (seq, e))
            return
        with lock: log.write(("ok %d\n" % seq) if n == 65536 else ("short %d %d\n" % (seq, n)))
threads = [threading.Thread(target=run) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
log.write("exit\n")
PY
timeout 90 /usr/bin/python3 "$T/writer.py" "$T/fuse/disk" "$T/acks.log" > "$T/writer.out" 2>&1 &
WRITER=$!
track_pid "$WRITER"

wait_for_acks 300 "$T/acks.log" "$WRITER" "$T/writer.out"
stop_source
wait_exit "$WRITER" 20 || fail "writer still running 20 s after the daemon exited (a FUSE request hangs?)"
grep -q '^exit' "$T/acks.log" || { cat "$T/writer.out"; fail "writer did not end cleanly"; }
acked=$(grep -c '^ok' "$T/acks.log")
echo "acknowledged writes: $acked; then: $(grep -m1 '^error' "$T/acks.log" || echo 'no error')"

check_acked_writes "$T/disk.img" "$T/acks.log"
pass
