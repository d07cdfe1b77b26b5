#!/usr/bin/env bash
# Replication benchmarks (make bench runs this after bench/run.sh), each figure beside a peer
# measured in the same run on the same machine (method and results: docs/benchmarks.md):
#
#   1. write path with replication on: fio 4k random write QD32 against blockrep-source
#      replicating to a blockrep-target on this machine (TLS over loopback), beside
#      nbdkit's file plugin, alternating; ratio to nbdkit (target >= 0.7);
#   2. RPO while fio writes 64 KiB blocks at a fixed 50 MB/s for 30 s: p50/p99 of the lag
#      sampled from `blockrep status` every 200 ms, and the daemon's own p99 (target: p99
#      under 1 s);
#   3. initial replication of a 1 GiB disk half full of data: time until the disk is
#      protected and drained, beside `nbdcopy` (with and without --flush) copying the same
#      disk between two nbdkit file servers (target: no slower than nbdcopy);
#   4. resync of a 1 GiB disk with 0.2% of its 4 KiB blocks changed: time and bytes sent,
#      beside `rsync --inplace --no-whole-file --ignore-times` between the same two images (target: at
#      least 4x faster; bytes within 1.1x of the changed bytes plus the hashes).
#
# Environment: BENCH_REPL_SECTIONS (which of the rows above to run) [1 2 3 4],
# BENCH_REPL_ROUNDS (rounds of rows 1, 3 and 4; medians reported) [3], BENCH_SECONDS [10],
# BENCH_RAMP [2], BENCH_RPO_SECONDS [30], BENCH_RPO_RATE [50m], TMPDIR [/var/tmp].
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
BIN=build/blockrep-source
TBIN=build/blockrep-target
CLI=build/blockrep
PY=/usr/bin/python3
ROUNDS=${BENCH_REPL_ROUNDS:-3}
RUN_SECONDS=${BENCH_SECONDS:-10}
RAMP=${BENCH_RAMP:-2}
RPO_SECONDS=${BENCH_RPO_SECONDS:-30}
RPO_RATE=${BENCH_RPO_RATE:-50m}
GiB=$((1 << 30))
MiB=$((1 << 20))

die() { echo "bench: $*" >&2; exit 1; }
for t in fio nbdkit nbdcopy rsync openssl; do
  command -v "$t" > /dev/null || die "$t not found; run 'make deps'"
done
for b in "$BIN" "$TBIN" "$CLI"; do [ -x "$b" ] || die "$b not found; run 'make all'"; done

base=${TMPDIR:-/var/tmp}
work=$(mktemp -d "$base/blockrep-bench-repl.XXXXXX")
spid="" tpid="" kpid="" kpid2="" fio_pid=""
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in $fio_pid $spid $tpid $kpid $kpid2; do
    kill -TERM "$p" 2> /dev/null || true
  done
  for p in $fio_pid $spid $tpid $kpid $kpid2; do wait "$p" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

certs=$work/certs
tests/lib/make_certs.sh "$certs" site-a site-b
port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$work/nbd.sock
uri="nbd+unix:///vm1?socket=$sock"

start_target() {  # fresh state unless $1 = keep
  [ "${1:-}" = keep ] || rm -rf "$work/target"
  "$TBIN" --listen "127.0.0.1:$port" --state-dir "$work/target" --disk vm1=site-a \
    --tls-cert "$certs/site-b.crt" --tls-key "$certs/site-b.key" --tls-ca "$certs/ca.crt" \
    2>> "$work/target.log" &
  tpid=$!
  for _ in $(seq 100); do "$CLI" status --state-dir "$work/target" > /dev/null 2>&1 && return 0; sleep 0.05; done
  die "target not ready"
}
start_source() {  # $1 = image; fresh state unless $2 = keep
  [ "${2:-}" = keep ] || rm -rf "$work/source"
  rm -f "$sock"
  "$BIN" --disk "vm1=$1" --nbd "unix:$sock" --state-dir "$work/source" --target "127.0.0.1:$port" \
    --tls-cert "$certs/site-a.crt" --tls-key "$certs/site-a.key" --tls-ca "$certs/ca.crt" \
    --retry-unit 200ms 2>> "$work/source.log" &
  spid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && nbdinfo "$uri" > /dev/null 2>&1 && return 0; sleep 0.05; done
  die "source not ready"
}
stop() {  # pid variable name
  local p=${!1}
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2> /dev/null || true
  wait "$p" 2> /dev/null || true
  printf -v "$1" '%s' ""
}
field() {  # KEY: of disk vm1 in the source's status
  "$CLI" status --json --state-dir "$work/source" | $PY -c "import json,sys; v=json.load(sys.stdin)['disks'][0].get('$1'); print('' if v is None else v)"
}
wait_protected() {  # prints seconds waited (0.01 s resolution)
  local t0 t1
  t0=$(date +%s%N)
  until [ "$(field state)" = protected ]; do
    [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 600 ] || die "not protected after 600 s"
    sleep 0.01
  done
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", ns / 1e9 }'
}
now() { date +%s%N; }
wait_nbd() {  # SOCKET: until an NBD server answers there
  for _ in $(seq 200); do nbdinfo "nbd+unix:///?socket=$1" > /dev/null 2>&1 && return 0; sleep 0.05; done
  die "no NBD server on $1"
}
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
secs() { awk -v ns=$(($2 - $1)) 'BEGIN { printf "%.2f", ns / 1e9 }'; }

echo "== replication benchmarks"
date -u '+date: %Y-%m-%d %H:%M:%S UTC'
echo "machine: $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "software: $("$BIN" --version); $(nbdkit --version | head -n 1); $(nbdcopy --version | head -n 1); $(rsync --version | head -n 1)"
echo "source and target on this machine, TLS 1.3 over loopback, zstd level 1"

# Random data, copied the same way into blockrep's and nbdkit's backing files, dropped from
# the page cache and read back in the same way (how a file got into the page cache decides
# its folio sizes, and with them the cost of random 4 KiB writes: docs/benchmarks.md).
head -c $GiB /dev/urandom > "$work/random.img"
cp --sparse=never "$work/random.img" "$work/a.img"
cp --sparse=never "$work/random.img" "$work/k.img"
rm -f "$work/random.img"
sync
echo 1 > /proc/sys/vm/drop_caches 2> /dev/null || true
cat "$work/a.img" "$work/k.img" > /dev/null
SECTIONS=${BENCH_REPL_SECTIONS:-1 2 3 4}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
ratio1=0 s99=0 ratio3=0 ratio3f=0 ratio4=0 sync_sent=0 changed=1

# ---- 1. write path with replication on, beside nbdkit ---------------------------------------
if want 1; then
echo
echo "== 1. 4k random write QD32, ${RUN_SECONDS} s after ${RAMP} s ramp, $ROUNDS round(s): replicating blockrep-source vs nbdkit file"
fio_run() {  # URI JSON
  fio --name=w --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth=32 --size=1g \
    --norandommap --time_based --runtime="$RUN_SECONDS" --ramp_time="$RAMP" \
    --output-format=json --output="$2" > /dev/null 2>&1
  $PY -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["jobs"][0]["write"]["iops"]))' "$2"
}
b_iops=() k_iops=()
for r in $(seq "$ROUNDS"); do
  # blockrep: a fresh replica and journal each round, the initial copy done before fio.
  start_target
  start_source "$work/a.img"
  wait_protected > /dev/null
  sync
  b=$(fio_run "$uri" "$work/b$r.json")
  p99=$(field rpo_p99_ms)
  stop spid; stop tpid
  rm -f "$work/k.sock"
  nbdkit --foreground --unix "$work/k.sock" --exit-with-parent file "$work/k.img" 2>> "$work/nbdkit.log" &
  kpid=$!
  wait_nbd "$work/k.sock"
  sync
  k=$(fio_run "nbd+unix:///?socket=$work/k.sock" "$work/k$r.json")
  stop kpid
  echo "   round $r: blockrep (replicating) $b IOPS (RPO p99 ${p99} ms), nbdkit $k IOPS"
  b_iops+=("$b"); k_iops+=("$k")
done
bm=$(median "${b_iops[@]}"); km=$(median "${k_iops[@]}")
ratio1=$(awk -v b="$bm" -v k="$km" 'BEGIN { printf "%.2f", b / k }')
echo "   median: blockrep-source replicating $bm IOPS, nbdkit $km IOPS: ratio $ratio1 (target >= 0.7)"

fi

# ---- 2. RPO at a fixed write rate ------------------------------------------------------------
if want 2; then
echo
echo "== 2. RPO while fio writes 64 KiB blocks at $RPO_RATE/s for ${RPO_SECONDS} s"
start_target
start_source "$work/a.img"
wait_protected > /dev/null
fio --name=rpo --ioengine=nbd --uri="$uri" --rw=randwrite --bs=64k --iodepth=8 --size=1g \
  --rate="$RPO_RATE" --time_based --runtime="$RPO_SECONDS" --output-format=json \
  --output="$work/rpo.json" > /dev/null 2>&1 &
fio_pid=$!
: > "$work/rpo.samples"
while kill -0 "$fio_pid" 2> /dev/null; do
  field rpo_ms >> "$work/rpo.samples"
  sleep 0.2
done
wait "$fio_pid" || die "fio failed in the RPO run"
fio_pid=""
rate=$($PY -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["jobs"][0]["write"]["bw_bytes"] / 1e6, 1))' "$work/rpo.json")
read -r s50 s99 smax n <<< "$($PY -c '
import sys
v = sorted(int(x) for x in open(sys.argv[1]).read().split() if x.strip())
r = lambda p: v[min(len(v) - 1, max(0, (len(v) * p + 99) // 100 - 1))]
print(r(50), r(99), v[-1], len(v))' "$work/rpo.samples")"
d99=$(field rpo_p99_ms)
stop spid; stop tpid
echo "   fio wrote $rate MB/s; RPO from $n samples of blockrep status: p50 $s50 ms, p99 $s99 ms, max $smax ms; the daemon's own p99 over its last minute: $d99 ms (target: p99 under 1000 ms)"

fi

# ---- 3. initial replication vs nbdcopy -----------------------------------------------------------
if want 3; then
echo
echo "== 3. initial replication of a 1 GiB disk half full of data, beside nbdcopy"
rm -f "$work/h.img"; truncate -s $GiB "$work/h.img"
# 512 MiB of data in 64 MiB runs with 64 MiB holes between them.
for i in 0 2 4 6 8 10 12 14; do
  head -c $((64 * MiB)) /dev/urandom | dd of="$work/h.img" bs=1M seek=$((i * 64)) conv=notrunc status=none
done
sync
echo 1 > /proc/sys/vm/drop_caches 2> /dev/null || true
cat "$work/h.img" > /dev/null
t_plain=() t_flush=() t_init=()
for r in $(seq "$ROUNDS"); do
  for mode in plain flush; do
    rm -f "$work/copy.img" "$work/k.sock" "$work/k2.sock"; truncate -s $GiB "$work/copy.img"
    nbdkit --foreground --unix "$work/k.sock" --exit-with-parent file "$work/h.img" 2>> "$work/nbdkit.log" &
    kpid=$!
    nbdkit --foreground --unix "$work/k2.sock" --exit-with-parent file "$work/copy.img" 2>> "$work/nbdkit.log" &
    kpid2=$!
    wait_nbd "$work/k.sock"
    wait_nbd "$work/k2.sock"
    sync
    flag=()
    [ "$mode" = flush ] && flag=(--flush)
    t0=$(now)
    nbdcopy "${flag[@]}" "nbd+unix:///?socket=$work/k.sock" "nbd+unix:///?socket=$work/k2.sock"
    t=$(secs "$t0" "$(now)")
    stop kpid; stop kpid2
    cmp "$work/h.img" "$work/copy.img" || die "nbdcopy's copy differs"
    if [ "$mode" = flush ]; then t_flush+=("$t"); else t_plain+=("$t"); fi
  done
  rm -f "$work/copy.img"
  sync
  # blockrep: from the source's start until `blockrep drain` returns, which is when the
  # replica is in sync and durable on the target.
  start_target
  t0=$(now)
  start_source "$work/h.img"
  "$CLI" drain vm1 --state-dir "$work/source" > /dev/null
  t=$(secs "$t0" "$(now)")
  [ "$(field state)" = protected ] || die "not protected after drain"
  sent=$(field sync_bytes_sent)
  stop spid; stop tpid
  cmp "$work/h.img" "$work/target/replicas/vm1/replica.img" || die "the replica differs after the initial copy"
  alloc=$(( $(stat -c %b "$work/target/replicas/vm1/replica.img") * 512 / MiB ))
  t_init+=("$t")
  echo "   round $r: blockrep initial replication $t s (sent $((sent / MiB)) MiB of data; replica allocates $alloc MiB); nbdcopy ${t_plain[-1]} s, nbdcopy --flush ${t_flush[-1]} s"
done
m_init=$(median "${t_init[@]}"); m_plain=$(median "${t_plain[@]}"); m_flush=$(median "${t_flush[@]}")
ratio3=$(awk -v a="$m_init" -v b="$m_plain" 'BEGIN { printf "%.2f", b / a }')
ratio3f=$(awk -v a="$m_init" -v b="$m_flush" 'BEGIN { printf "%.2f", b / a }')
echo "   median: blockrep $m_init s; nbdcopy $m_plain s (speed ratio $ratio3), nbdcopy --flush $m_flush s (speed ratio $ratio3f); target >= 1.0"

fi

# ---- 4. resync vs rsync ---------------------------------------------------------------------
if want 4; then
echo
echo "== 4. resync of a 1 GiB disk with 0.2% of its 4 KiB blocks changed, beside rsync"
start_target
start_source "$work/a.img"
wait_protected > /dev/null
stop spid; stop tpid
cp --sparse=never "$work/target/replicas/vm1/replica.img" "$work/old.img"
changed_blocks=$(( GiB / 4096 * 2 / 1000 ))
changed=$((changed_blocks * 4096))
echo "   changed per round: $changed_blocks random blocks, $changed bytes"
t_res=() t_rs=() sync_sent_all=()
for r in $(seq "$ROUNDS"); do
  # The replica and rsync's old.img equal a.img here; change the same blocks of a.img
  # for both.
  $PY - "$work/a.img" "$changed_blocks" "$r" <<'PY'
import os, random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blocks = os.path.getsize(path) // 4096
rng = random.Random(4242 + seed)
with open(path, "r+b") as f:
    for b in rng.sample(range(blocks), n):
        f.seek(b * 4096)
        f.write(os.urandom(4096))
PY
  sync
  start_target keep
  start_source "$work/a.img" keep
  "$CLI" drain vm1 --state-dir "$work/source" > /dev/null
  w0=$(field wire_bytes_sent)
  s0=$(field sync_bytes_sent)
  # Timed from the request to when `blockrep drain` returns: every block compared, the
  # differing ones durable on the target.
  t0=$(now)
  "$CLI" resync vm1 --state-dir "$work/source" > /dev/null
  "$CLI" drain vm1 --state-dir "$work/source" > /dev/null
  t=$(secs "$t0" "$(now)")
  w1=$(field wire_bytes_sent)
  sync_sent=$(( $(field sync_bytes_sent) - s0 ))
  stop spid; stop tpid
  cmp "$work/a.img" "$work/target/replicas/vm1/replica.img" || die "the replica differs after the resync"
  t0=$(now)
  rsync --inplace --no-whole-file --ignore-times --stats "$work/a.img" "$work/old.img" > "$work/rsync.out"
  t_rsync=$(secs "$t0" "$(now)")
  cmp "$work/a.img" "$work/old.img" || die "rsync's copy differs"
  literal=$(awk -F': ' '/Literal data/ { gsub(/[^0-9]/, "", $2); print $2 }' "$work/rsync.out")
  rsync_sent=$(awk -F': ' '/Total bytes sent/ { gsub(/[^0-9]/, "", $2); print $2 }' "$work/rsync.out")
  t_res+=("$t"); t_rs+=("$t_rsync"); sync_sent_all+=("$sync_sent")
  echo "   round $r: blockrep resync $t s, sync data sent $sync_sent bytes ($(awk -v s="$sync_sent" -v c="$changed" 'BEGIN { printf "%.2f", s / c }')x the changed bytes), all frames to the target $((w1 - w0)) bytes; rsync $t_rsync s, literal data $literal bytes, sent $rsync_sent bytes"
done
m_res=$(median "${t_res[@]}"); m_rs=$(median "${t_rs[@]}")
sync_sent=$(printf '%s\n' "${sync_sent_all[@]}" | sort -n | tail -n 1)
ratio4=$(awk -v a="$m_res" -v b="$m_rs" 'BEGIN { printf "%.1f", b / a }')
echo "   median: blockrep resync $m_res s, rsync $m_rs s: speed ratio $ratio4 (target >= 4); most sync data in a round $sync_sent bytes"

fi

echo
echo "== replication targets"
! want 1 || awk -v r="$ratio1" 'BEGIN { printf "- write path with replication, randwrite-4k vs nbdkit: %.2f, target >= 0.7: %s\n", r, (r >= 0.7 ? "met" : "NOT met") }'
! want 2 || awk -v p="$s99" 'BEGIN { printf "- RPO p99 at the fixed rate: %d ms, target < 1000 ms: %s\n", p, (p < 1000 ? "met" : "NOT met") }'
! want 3 || awk -v r="$ratio3" -v f="$ratio3f" 'BEGIN { printf "- initial replication vs nbdcopy: %.2fx as fast (vs nbdcopy --flush %.2fx), target >= 1.0: %s (vs --flush: %s)\n", r, f, (r >= 1.0 ? "met" : "NOT met"), (f >= 1.0 ? "met" : "NOT met") }'
! want 4 || awk -v r="$ratio4" -v s="$sync_sent" -v c="$changed" 'BEGIN { printf "- resync vs rsync: %.1fx as fast, target >= 4: %s; data %.2fx the changed bytes, target <= 1.1: %s\n", r, (r >= 4 ? "met" : "NOT met"), s / c, (s / c <= 1.1 ? "met" : "NOT met") }'
