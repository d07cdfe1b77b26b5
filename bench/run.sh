#!/usr/bin/env bash
# make bench: fio (nbd engine) against blockrep-source, nbdkit's file plugin and qemu-nbd,
# each serving its own backing file of the same size over a unix socket. Rows: 4k random
# write QD32, 4k random read QD32, 1 MiB sequential write QD8. The servers alternate run by
# run and every row is repeated; the table shows medians. Method and results:
# docs/benchmarks.md.
#
# blockrep-source journals every write (its HRL journal, in a state directory on the same
# file system as the backing files), so every byte written reaches the disk twice. Nothing
# ships the journal yet, so it only grows: blockrep-source is restarted with an empty state
# directory before each of its runs, and its budget is set high enough that the journal never
# passes it during a run (the disk would then switch to its dirty bitmap and stop journaling,
# which would no longer measure the journal). The report ends with the issue's targets for
# the journaling write path (vs nbdkit: >= 0.85 on randwrite-4k, >= 0.6 on seqwrite-1m).
#
# Environment (defaults in brackets):
#   BENCH_DISK_BYTES  size of each backing file [1073741824]
#   BENCH_SECONDS     measured seconds per fio run [10]
#   BENCH_RAMP        fio ramp_time seconds, not measured [2]
#   BENCH_ROUNDS      repetitions of each row per server; the median is reported [3]
#   BENCH_NUMJOBS     fio job (connection) counts to run, e.g. "1 2" [1]
#   BENCH_THREADS     blockrep-source --threads [its default: one per CPU, at most 8]
#   BENCH_RESULTS     directory to keep results.tsv, report.md and fio's JSON in [none]
#   TMPDIR            parent of the scratch directory [/var/tmp]
#   BLOCKREP_SOURCE   the binary [build/blockrep-source]
# Quick smoke run: BENCH_SECONDS=3 BENCH_ROUNDS=1 BENCH_DISK_BYTES=$((256<<20)) bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

BIN=${BLOCKREP_SOURCE:-build/blockrep-source}
DISK_BYTES=${BENCH_DISK_BYTES:-$((1 << 30))}
RUN_SECONDS=${BENCH_SECONDS:-10}
RAMP=${BENCH_RAMP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
NUMJOBS_LIST=${BENCH_NUMJOBS:-1}
THREADS=${BENCH_THREADS:-}
RESULTS=${BENCH_RESULTS:-}
PY=/usr/bin/python3
REPORT="$repo/bench/report.py"
EXPORT=bench
SERVERS=(blockrep nbdkit qemu-nbd)

die() { echo "bench: $*" >&2; exit 1; }
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
isnum "$DISK_BYTES" && [ "$DISK_BYTES" -ge $((64 << 20)) ] && [ $((DISK_BYTES % (1 << 20))) -eq 0 ] ||
  die "BENCH_DISK_BYTES must be a multiple of 1 MiB and at least 64 MiB (got '$DISK_BYTES')"
isnum "$RUN_SECONDS" && [ "$RUN_SECONDS" -ge 1 ] || die "BENCH_SECONDS must be >= 1"
isnum "$RAMP" || die "BENCH_RAMP must be a whole number of seconds"
isnum "$ROUNDS" && [ "$ROUNDS" -ge 1 ] || die "BENCH_ROUNDS must be >= 1"
for nj in $NUMJOBS_LIST; do isnum "$nj" && [ "$nj" -ge 1 ] && [ "$nj" -le 8 ] || die "BENCH_NUMJOBS: 1..8"; done
[ -z "$THREADS" ] || isnum "$THREADS" || die "BENCH_THREADS must be a number"

[ -x "$BIN" ] || die "$BIN not found; run 'make all' first"
[ -x "$PY" ] || die "$PY not found"
for t in fio nbdkit qemu-nbd nbdinfo timeout fallocate; do
  command -v "$t" > /dev/null || die "$t not found; run 'make deps' (scripts/install-deps.sh)"
done
fio --enghelp=nbd > /dev/null 2>&1 || die "this fio has no nbd engine"

base=${TMPDIR:-/var/tmp}
# Room for one run's journal: a generous 1 GB/s of writes for the whole run.
JOURNAL_BYTES=$(((RUN_SECONDS + RAMP) * 1000 * 1000 * 1000 + (1 << 30)))
need=$((3 * DISK_BYTES + JOURNAL_BYTES + (64 << 20)))
avail=$(df --output=avail -B1 "$base" | tail -n 1 | tr -d ' ')
[ "$avail" -ge "$need" ] || die "$base has $avail bytes free; need $need (3 x BENCH_DISK_BYTES and one run's journal)"

work=$(mktemp -d "$base/blockrep-bench.XXXXXX")
declare -A pid=() sock=() file=() log=()
for s in "${SERVERS[@]}"; do
  sock[$s]="$work/$s.sock"
  file[$s]="$work/$s.img"
  log[$s]="$work/$s.log"
done

# Stop one server: SIGTERM, up to 30 s for it to exit, then SIGKILL. Sets stop_rc to its exit
# status. Not to be called in $(...): wait only works on this shell's own children.
stop_rc=0
stop_server() {
  local s=$1 p=${pid[$1]:-}
  stop_rc=0
  [ -n "$p" ] || return 0
  pid[$s]=""
  kill -TERM "$p" 2> /dev/null || true
  for _ in $(seq 300); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2> /dev/null; then
    echo "bench: $s (pid $p) ignored SIGTERM for 30 s; killing it" >&2
    kill -KILL "$p" 2> /dev/null || true
  fi
  wait "$p" 2> /dev/null || stop_rc=$?
}

fio_pid=""
cleanup() {
  local s
  trap - EXIT INT TERM
  if [ -n "$fio_pid" ]; then
    kill -TERM "$fio_pid" 2> /dev/null || true
    wait "$fio_pid" 2> /dev/null || true
  fi
  for s in "${SERVERS[@]}"; do stop_server "$s"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

uri() { echo "nbd+unix:///$EXPORT?socket=${sock[$1]}"; }

# Start one server in the background (a child of this shell, so wait works) and wait, at
# most 15 s, until nbdinfo can talk to it.
start_server() {
  local s=$1
  rm -f "${sock[$s]}"
  case $s in
    blockrep)
      rm -rf "$work/state"
      "$BIN" --disk "$EXPORT=${file[$s]}" --nbd "unix:${sock[$s]}" ${THREADS:+--threads "$THREADS"} \
        --state-dir "$work/state" --journal-max-bytes "$JOURNAL_BYTES" \
        >> "${log[$s]}" 2>&1 &
      ;;
    nbdkit)
      # nbdkit's file plugin serves its one file under any export name; parallel thread
      # model, 16 threads by default, page cache (cache=default).
      nbdkit --foreground --unix "${sock[$s]}" --exit-with-parent file "${file[$s]}" \
        >> "${log[$s]}" 2>&1 &
      ;;
    qemu-nbd)
      # --persistent: do not exit when the last client (e.g. the readiness probe) leaves.
      qemu-nbd --aio=io_uring --cache=writeback --format=raw --shared=8 --persistent \
        --socket="${sock[$s]}" --export-name="$EXPORT" "${file[$s]}" >> "${log[$s]}" 2>&1 &
      ;;
  esac
  pid[$s]=$!
  for _ in $(seq 150); do
    timeout 5 nbdinfo "$(uri "$s")" > /dev/null 2>&1 && return 0
    kill -0 "${pid[$s]}" 2> /dev/null || { tail -n 20 "${log[$s]}" >&2; die "$s exited during startup"; }
    sleep 0.1
  done
  tail -n 20 "${log[$s]}" >&2
  die "$s not ready after 15 s"
}

cpu_ticks() { # utime + stime of the whole process (all threads), in clock ticks
  local st f
  st=$(< "/proc/$1/stat") || { echo 0; return; }
  read -r -a f <<< "${st##*) }" # fields from 3 (state) on: utime is [11], stime [12]
  echo $((f[11] + f[12]))
}
cached_pct() { # how much of a file is in the page cache, in percent ("?" without fincore)
  local res
  res=$(fincore --bytes --noheadings --output RES "$1" 2> /dev/null) || { echo "?"; return; }
  echo $((res * 100 / DISK_BYTES))
}
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2> /dev/null || echo 0; }

# ---------------------------------------------------------------------------------------------
echo "== blockrep-source vs nbdkit vs qemu-nbd (fio, nbd engine, unix sockets)"
date -u '+date: %Y-%m-%d %H:%M:%S UTC'
echo "machine: $(nproc) CPUs, $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
  "$(awk '/^MemTotal:/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "software: $("$BIN" --version 2>&1 | head -n 1); $(nbdkit --version | head -n 1);" \
  "$(qemu-nbd --version | head -n 1); $(fio --version)"
echo "scratch: $work ($(findmnt -n -o FSTYPE -T "$work" 2> /dev/null || echo '?'))," \
  "3 x $DISK_BYTES-byte backing files filled with random data"
echo "runs: ${RUN_SECONDS} s measured after ${RAMP} s ramp, $ROUNDS round(s), numjobs: $NUMJOBS_LIST," \
  "blockrep-source --threads ${THREADS:-default}"

# Backing files: real data in every block, written before any server starts, so that no run
# pays for first-touch block allocation (or for converting fallocate's unwritten extents)
# and no read hits a hole. All three are made the same way (copied from one random source),
# then dropped from the page cache and read back in the same way: how a file got into the
# page cache decides its folio sizes, and random 4 KiB writes into large folios cost ext4
# several times more (a file written sequentially by one tool and copied by another once
# made the same server measure 30k or 86k IOPS).
echo "== filling backing files"
head -c "$DISK_BYTES" /dev/urandom > "$work/source.img"
for s in "${SERVERS[@]}"; do cp --sparse=never "$work/source.img" "${file[$s]}"; done
rm -f "$work/source.img"
timeout 600 sync || die "sync did not finish in 600 s"
for s in "${SERVERS[@]}"; do
  [ "$(stat -c %s "${file[$s]}")" -eq "$DISK_BYTES" ] || die "short backing file ${file[$s]}"
done
echo 1 > /proc/sys/vm/drop_caches 2> /dev/null || echo "   (cannot drop the page cache: not root?)"
for s in "${SERVERS[@]}"; do cat "${file[$s]}" > /dev/null; done # all start in the page cache

echo "== starting servers"
for s in "${SERVERS[@]}"; do start_server "$s"; echo "   $s: pid ${pid[$s]}, $(uri "$s")"; done

# name rw bs iodepth
ROWS=(
  "randwrite-4k randwrite 4k 32"
  "randread-4k randread 4k 32"
  "seqwrite-1m write 1m 8"
)

results="$work/results.tsv"
: > "$results"
clk=$(getconf CLK_TCK)
total=$(($(wc -w <<< "$NUMJOBS_LIST") * ${#ROWS[@]} * ROUNDS * ${#SERVERS[@]}))
n=0
failures=0

# One fio run against one server; appends a line to $results.
run_one() {
  local row=$1 rw=$2 bs=$3 qd=$4 nj=$5 s=$6 round=$7
  local dir=write json err p t0 t1 c0 c1 out cached status=ok iops=0 bw=0 p99=0 fcpu=0 scpu=0 rss=0
  [ "$rw" = randread ] && dir="read"
  json="$work/fio-$row-j$nj-$s-r$round.json"
  err="$work/fio-$row-j$nj-$s-r$round.err"
  local per_job=$(((DISK_BYTES / nj) >> 20 << 20))
  if [ "$s" = blockrep ]; then  # a fresh, empty journal for every run (see the top)
    stop_server blockrep
    [ "$stop_rc" -eq 0 ] || { echo "bench: blockrep-source exited $stop_rc on SIGTERM" >&2; failures=$((failures + 1)); }
    start_server blockrep
  fi
  p=${pid[$s]}

  # Start every run with no dirty pages, so one server's writeback does not land in the next
  # server's run.
  timeout 300 sync || echo "bench: sync took over 300 s" >&2
  # ... and with the whole backing file in the page cache. A server's file sits idle while
  # the other two run, and a kernel with proactive reclaim (DAMON_RECLAIM and the like; this
  # machine's pages out file pages idle for ~30 s) may have evicted part of it meanwhile.
  cached=$(cached_pct "${file[$s]}")
  timeout 300 cat "${file[$s]}" > /dev/null || echo "bench: warming ${file[$s]} took over 300 s" >&2
  echo 5 > "/proc/$p/clear_refs" 2> /dev/null || true # reset VmHWM: peak RSS of this run
  c0=$(cpu_ticks "$p")
  t0=$(date +%s%N)
  # In the background and waited for, so that a signal to this script is handled at once
  # (cleanup stops fio through timeout, which passes the signal on).
  timeout --kill-after=10 $((RUN_SECONDS + RAMP + 60)) \
    fio --name="$row" --ioengine=nbd --uri="$(uri "$s")" --rw="$rw" --bs="$bs" --iodepth="$qd" \
    --numjobs="$nj" --size="$per_job" --offset_increment="$per_job" --norandommap \
    --time_based --runtime="$RUN_SECONDS" --ramp_time="$RAMP" --group_reporting \
    --output-format=json --output="$json" > /dev/null 2> "$err" &
  fio_pid=$!
  wait "$fio_pid" || status=fio-failed
  fio_pid=""
  t1=$(date +%s%N)
  c1=$(cpu_ticks "$p")
  rss=$(hwm_kib "$p")
  if [ "$status" = ok ]; then
    if out=$("$PY" "$REPORT" parse "$json" "$dir" 2>> "$err"); then
      read -r iops bw p99 fcpu <<< "$out"
    else
      status=bad-json
    fi
  fi
  # server CPU in percent of one CPU, over the whole fio run (ramp included)
  scpu=$(awk -v c=$((c1 - c0)) -v hz="$clk" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", 100 * c / hz / (ns / 1e9) }')
  n=$((n + 1))
  if [ "$status" = ok ]; then
    printf '   [%d/%d] %-12s jobs=%d round %d  %-8s %8.0f IOPS %7.1f MB/s  p99 %6.0f us  CPU server %3.0f%% fio %3.0f%%  (was cached: %s%%)\n' \
      "$n" "$total" "$row" "$nj" "$round" "$s" "$iops" "$(awk -v b="$bw" 'BEGIN { print b / 1e6 }')" \
      "$p99" "$scpu" "$fcpu" "$cached"
  else
    failures=$((failures + 1))
    echo "   [$n/$total] $row jobs=$nj round $round $s: $status" >&2
    tail -n 5 "$err" >&2 || true
    tail -n 5 "${log[$s]}" >&2 || true
  fi
  if [ "$s" = blockrep ] && [ "$status" = ok ] && ! grep -q '"mode": "journaling"' "$work/state/disks/$EXPORT/state.json"; then
    status=not-journaling  # the journal passed its budget: this run did not measure it
  fi
  printf '%s %d %s %d %s %s %s %s %s %s %s\n' "$row" "$nj" "$s" "$round" "$status" \
    "$iops" "$bw" "$p99" "$fcpu" "$scpu" "${rss:-0}" >> "$results"
  if ! kill -0 "$p" 2> /dev/null; then
    stop_server "$s"
    echo "bench: $s died (exit $stop_rc); restarting it" >&2
    start_server "$s"
  fi
}

echo "== runs (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
for nj in $NUMJOBS_LIST; do
  for r in "${ROWS[@]}"; do
    read -r row rw bs qd <<< "$r"
    for round in $(seq "$ROUNDS"); do
      # The servers take turns; the first one rotates each round so none is always first.
      for i in 0 1 2; do
        s=${SERVERS[$(((round - 1 + i) % 3))]}
        run_one "$row" "$rw" "$bs" "$qd" "$nj" "$s" "$round"
      done
    done
  done
done

echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== stopping servers"
for s in "${SERVERS[@]}"; do
  stop_server "$s"
  echo "   $s exited $stop_rc"
  [ "$s" != blockrep ] || [ "$stop_rc" -eq 0 ] || { echo "bench: blockrep-source exited $stop_rc on SIGTERM" >&2; failures=$((failures + 1)); }
done

echo
echo "== results: median of $ROUNDS round(s); 'vs nbdkit' = median IOPS / nbdkit's median IOPS;"
echo "   MB/s = 10^6 bytes/s; CPU % = percent of one CPU (this machine has $(nproc))"
echo
"$PY" "$REPORT" table "$results" | tee "$work/report.md"
echo | tee -a "$work/report.md"
"$PY" "$REPORT" targets "$results" | tee -a "$work/report.md"

if [ -n "$RESULTS" ]; then
  mkdir -p "$RESULTS"
  cp "$results" "$work/report.md" "$work"/fio-*.json "$RESULTS"/
  echo
  echo "results kept in $RESULTS"
fi

if [ "$failures" -gt 0 ]; then
  echo "bench: $failures run(s) failed; see above" >&2
  exit 1
fi
