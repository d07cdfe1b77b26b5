#!/usr/bin/env bash
# SIGTERM during active I/O: an nbdsh writer keeps 16 x 64 KiB writes in flight (a unique
# pattern per write, never rewriting an offset) and logs every write the server acknowledged
# as successful. Once 300 writes are acknowledged the daemon gets SIGTERM. It must exit 0
# within 20 s, the writer must see the connection end (a disconnect, not a protocol error)
# and stop, and every acknowledged write must be in the backing file afterwards (checked
# byte for byte).
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 1G
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"

cat > "$T/writer.py" <<'PY'
import os, struct, time
log = open(os.environ["ACKLOG"], "w", buffering=1)
def pattern(seq):
    return struct.pack(">Q", seq + 1) * 8192          # 64 KiB
inflight = {}
seq = 0
size = h.get_size()
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        while len(inflight) < 16 and seq * 65536 < size:
            c = h.aio_pwrite(pattern(seq), seq * 65536)
            inflight[c] = seq
            seq += 1
        h.poll(1000)
        for c in list(inflight):
            try:
                done = h.aio_command_completed(c)
            except nbd.Error as e:           # an error reply: not acknowledged data
                log.write("error %d %s\n" % (inflight.pop(c), e))
                continue
            if done:
                log.write("ok %d\n" % inflight.pop(c))
        if not inflight and seq * 65536 >= size:
            log.write("finished before SIGTERM\n")
            break
except nbd.Error as e:
    log.write("end %s\n" % e)
log.write("exit\n")
PY
ACKLOG=$T/acks.log PATH=/usr/bin:$PATH timeout 90 nbdsh -u "$(uri disk)" -c "exec(open('$T/writer.py').read())" \
  > "$T/writer.out" 2>&1 &
WRITER=$!
track_pid "$WRITER"

wait_for_acks 300 "$T/acks.log" "$WRITER" "$T/writer.out"
stop_source
wait_exit "$WRITER" 20 || fail "writer still running 20 s after the server exited"
rc=0; wait "$WRITER" || rc=$?
grep -q '^exit' "$T/acks.log" || { cat "$T/writer.out"; fail "writer did not end cleanly (exit $rc)"; }
# the connection must end as a disconnect, not with a garbled reply stream
if grep -iE '^(end|error).*(cookie|magic|invalid reply|protocol|unexpected)' "$T/acks.log"; then
  fail "the writer saw a protocol error when the server shut down (see above)"
fi
acked=$(grep -c '^ok' "$T/acks.log")
errors=$(grep -c '^error' "$T/acks.log" || true)
echo "acknowledged writes: $acked; error replies: $errors; $(grep '^end' "$T/acks.log" || echo 'no disconnect error')"

check_acked_writes "$T/a.img" "$T/acks.log"
pass
