# shellcheck shell=bash
# Helpers for the integration tests in tests/integration/. Source it first thing:
#
#   . "$(dirname "$0")/../lib/common.sh"
#
# It gives every test:
#   REPO, LIBDIR          the repository root and tests/lib
#   BLOCKREP_SOURCE       the server under test (env override; default $REPO/build/blockrep-source)
#   T                     a private temp dir (mktemp -d), removed on exit (KEEP_TMP=1 keeps it)
#   SOCK                  $T/nbd.sock, the default unix socket path
#   start_source ARGS...  runs the server in the background, waits until it answers
#   stop_source           SIGTERM, bounded wait, asserts exit status 0
#   fail MSG / pass [MSG] end the test with a one-line verdict
#   nbdsh_py URI          runs the Python on stdin in nbdsh (Debian's python) against URI
#   raw_py                runs the Python on stdin with Debian's python and tests/lib on sys.path
#                         (for tests/lib/nbd_raw.py)
# An EXIT trap stops the server (SIGTERM, then SIGKILL), kills background jobs registered with
# track_pid, detaches loop devices registered with track_loop, and removes $T. A command that
# fails under `set -e` ends the test with a FAIL line naming the command and line.

set -eEuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIBDIR=$REPO/tests/lib
BLOCKREP_SOURCE=${BLOCKREP_SOURCE:-$REPO/build/blockrep-source}
TEST_NAME=$(basename "$0" .sh)
READY_TIMEOUT=${READY_TIMEOUT:-10}   # seconds for the server to answer after start
STOP_TIMEOUT=${STOP_TIMEOUT:-20}     # seconds for the server to exit after SIGTERM

T=$(mktemp -d "${TMPDIR:-/tmp}/blockrep-it.XXXXXX")
SOCK=$T/nbd.sock
SOURCE_PID=""
SOURCE_LOG=$T/source.log
_TRACKED_PIDS=()
_TRACKED_LOOPS=()
_FINISHED=0

# --- verdicts ---------------------------------------------------------------------------------

_show_log() {
  if [ -s "$SOURCE_LOG" ]; then
    echo "--- server stderr (last 25 lines of $SOURCE_LOG) ---"
    tail -n 25 "$SOURCE_LOG"
  fi
}

fail() {
  _FINISHED=1
  echo "FAIL: $TEST_NAME: $*"
  _show_log
  exit 1
}

pass() {
  _FINISHED=1
  echo "PASS: $TEST_NAME${1:+: $1}"
  exit 0
}

_on_err() {
  local rc=$? line=$1 cmd=$2
  [ "$_FINISHED" = 1 ] && return
  _FINISHED=1
  echo "FAIL: $TEST_NAME: line $line: command exited $rc: $cmd"
  _show_log
  exit 1
}
trap '_on_err "$LINENO" "$BASH_COMMAND"' ERR

# --- process helpers --------------------------------------------------------------------------

# alive PID: true while PID exists and is not a zombie (kill -0 succeeds on zombies).
alive() {
  local st
  st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# wait_exit PID SECONDS: poll until PID has exited (or became a zombie); false on timeout.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while alive "$pid"; do
    [ $SECONDS -ge "$deadline" ] && return 1
    sleep 0.05
  done
  return 0
}

track_pid() { _TRACKED_PIDS+=("$1"); }
track_loop() { _TRACKED_LOOPS+=("$1"); }

_cleanup() {
  local p
  for p in "${_TRACKED_PIDS[@]}"; do
    if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in "${_TRACKED_PIDS[@]}"; do
    # fio's job processes are children of the pid the test tracked.
    if ! wait_exit "$p" 5; then pkill -KILL -P "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; fi
  done
  if [ -n "$SOURCE_PID" ] && alive "$SOURCE_PID"; then
    kill -TERM "$SOURCE_PID" 2>/dev/null || true
    if ! wait_exit "$SOURCE_PID" 10; then
      kill -KILL "$SOURCE_PID" 2>/dev/null || true
      wait_exit "$SOURCE_PID" 5 || true
    fi
  fi
  for p in "${_TRACKED_LOOPS[@]}"; do
    losetup -d "$p" 2>/dev/null || true
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "(kept $T)"
  else
    rm -rf "$T"
  fi
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- the server -------------------------------------------------------------------------------

# The first unix socket among the args (the readiness probe uses it), else the first TCP spec.
_probe_uri() {
  local prev="" a
  for a in "$@"; do
    if [ "$prev" = --nbd ]; then
      case $a in unix:*) echo "nbd+unix:///?socket=${a#unix:}"; return ;; esac
    fi
    prev=$a
  done
  prev=""
  for a in "$@"; do
    if [ "$prev" = --nbd ]; then
      case $a in tcp:*) echo "nbd://${a#tcp:}/"; return ;; esac
    fi
    prev=$a
  done
}

# start_source ARGS...: start the server with ARGS, wait (bounded) until `nbdinfo --list` works
# (on the first --nbd listener among ARGS, or on $PROBE_URI).
# Without a --state-dir (or a --config) among ARGS, the state goes to $STATE (= $T/state),
# never to the system default.
# With SOURCE_NETNS set, the server runs in that network namespace (`ip netns exec`, which
# execs it: SOURCE_PID is the server's own pid). Unix sockets are file system paths, so the
# readiness probe and the CLI still reach it from here.
STATE=$T/state
start_source() {
  [ -x "$BLOCKREP_SOURCE" ] || fail "server binary $BLOCKREP_SOURCE is missing (make all)"
  local uri sock deadline netns=()
  [ -z "${SOURCE_NETNS:-}" ] || netns=(ip netns exec "$SOURCE_NETNS")
  case " $* " in *" --state-dir "*|*" --state-dir="*|*" --config "*) ;; *) set -- "$@" --state-dir "$STATE" ;; esac
  uri=${PROBE_URI:-$(_probe_uri "$@")}  # PROBE_URI: when the listeners come from a config file
  [ -n "$uri" ] || fail "start_source: no --nbd unix:/tcp: argument to probe"
  "${netns[@]}" "$BLOCKREP_SOURCE" "$@" 2> "$SOURCE_LOG" &
  SOURCE_PID=$!
  deadline=$((SECONDS + READY_TIMEOUT))
  sock=""
  case $uri in *socket=*) sock=${uri#*socket=} ;; esac
  while :; do
    if ! alive "$SOURCE_PID"; then
      local rc=0
      wait "$SOURCE_PID" || rc=$?
      SOURCE_PID=""
      fail "server exited with status $rc before it was ready (args: $*)"
    fi
    if { [ -z "$sock" ] || [ -S "$sock" ]; } &&
       timeout 5 nbdinfo --list "$uri" > /dev/null 2>&1; then
      return 0
    fi
    [ $SECONDS -ge "$deadline" ] && fail "server not ready within ${READY_TIMEOUT}s ($uri)"
    sleep 0.05
  done
}

# stop_source: SIGTERM, wait at most STOP_TIMEOUT s, and require exit status 0.
stop_source() {
  [ -n "$SOURCE_PID" ] || fail "stop_source: server not running"
  local pid=$SOURCE_PID rc=0
  kill -TERM "$pid" || true
  if ! wait_exit "$pid" "$STOP_TIMEOUT"; then
    kill -KILL "$pid" 2>/dev/null || true
    fail "server did not exit within ${STOP_TIMEOUT}s of SIGTERM"
  fi
  wait "$pid" || rc=$?
  SOURCE_PID=""
  [ "$rc" -eq 0 ] || fail "server exited with status $rc after SIGTERM (expected 0)"
}

# source_alive: the server process is still running.
source_alive() { [ -n "$SOURCE_PID" ] && alive "$SOURCE_PID"; }

# uri NAME [SOCKET]: the NBD URI of export NAME on a unix socket.
uri() { echo "nbd+unix:///$1?socket=${2:-$SOCK}"; }

# make_disk PATH SIZE: a sparse raw image.
make_disk() { rm -f "$1"; truncate -s "$2" "$1"; }

# free_tcp_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_tcp_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- clients ----------------------------------------------------------------------------------

# nbdsh_py URI: run the Python script on stdin inside nbdsh (handle `h` connected to URI).
# nbdsh needs Debian's python3 (the one first on PATH may lack the nbd module).
nbdsh_py() {
  local script
  script=$(cat)
  PATH=/usr/bin:$PATH timeout "${NBDSH_TIMEOUT:-60}" nbdsh -u "$1" -c "$script"
}

# nbdsh_plain: nbdsh without a connected handle (-n): the script makes its own handles.
nbdsh_plain() {
  local script
  script=$(cat)
  PATH=/usr/bin:$PATH timeout "${NBDSH_TIMEOUT:-60}" nbdsh -n -c "$script"
}

# raw_py [ARGS...]: run the Python script on stdin with Debian's python; tests/lib on sys.path,
# so `from nbd_raw import *` works. SOCK and T are in the environment.
# shellcheck disable=SC2120  # tests may pass arguments through to the script
raw_py() {
  SOCK=$SOCK T=$T PYTHONPATH=$LIBDIR PYTHONDONTWRITEBYTECODE=1 timeout "${RAW_TIMEOUT:-60}" /usr/bin/python3 - "$@"
}

# allocated_bytes FILE / apparent_bytes FILE
allocated_bytes() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
apparent_bytes() { stat -c %s "$1"; }

# raw_check [WHAT]: run the Python on stdin like raw_py; on failure end the test with FAIL and
# the script's last output line (its reason) in that line.
raw_check() {
  local out rc=0
  out=$(raw_py 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    [ "$(echo "$out" | wc -l)" -gt 1 ] && echo "$out" | sed '$d'
    fail "${1:+$1: }$(echo "$out" | tail -n 1)"
  fi
  [ -z "$out" ] || echo "$out"
}

# --- acknowledged writes (SIGTERM under load) -------------------------------------------------

# The writer of such a test logs "ok SEQ" to its ack log for every write the server (or the
# kernel, through FUSE) acknowledged as done, where write SEQ put struct.pack(">Q", SEQ + 1)
# * 8192 (64 KiB) at offset SEQ * 65536 and no offset is written twice; it logs "finished
# before SIGTERM" if it reached the end of the disk.

# wait_for_acks N ACKLOG WRITER_PID WRITER_OUT: wait (at most 30 s) until ACKLOG holds N
# acknowledged writes, and require that the writer is still busy then. Fails the test (with the
# writer's output when it died) otherwise.
wait_for_acks() {
  local n=$1 acklog=$2 writer=$3 out=$4 deadline=$((SECONDS + 30))
  until [ -f "$acklog" ] && [ "$(grep -c '^ok' "$acklog")" -ge "$n" ]; do
    alive "$writer" || { cat "$out"; fail "writer exited before $n writes were acknowledged"; }
    [ $SECONDS -lt "$deadline" ] || fail "fewer than $n writes acknowledged in 30 s"
    sleep 0.01
  done
  if grep -q 'finished before SIGTERM' "$acklog"; then
    fail "writer finished the disk before SIGTERM: no I/O was active"
  fi
}

# check_acked_writes DISK ACKLOG: every write ACKLOG says was acknowledged is in the file DISK,
# byte for byte. Fails the test, naming some missing writes, otherwise.
check_acked_writes() {
  /usr/bin/python3 - "$1" "$2" <<'PY' || fail "acknowledged writes are missing from the backing file (see above)"
import struct, sys
f = open(sys.argv[1], "rb")
bad = []
for line in open(sys.argv[2]):
    if not line.startswith("ok "):
        continue
    seq = int(line.split()[1])
    f.seek(seq * 65536)
    if f.read(65536) != struct.pack(">Q", seq + 1) * 8192:
        bad.append(seq)
if bad:
    print("  %d acknowledged writes not on disk, e.g. seq %r" % (len(bad), bad[:5])); sys.exit(1)
PY
}

# --- mounts (FUSE tests) ----------------------------------------------------------------------

# track_mount DIR: DIR is a mount point the test made (the daemon's --fuse directory, a file
# system on a loop device). On exit, before the usual cleanup, every tracked mount point that
# is still mounted is unmounted, newest first (lazily when busy or stale), so $T can be removed.
_TRACKED_MOUNTS=()
track_mount() {
  _TRACKED_MOUNTS+=("$1")
  trap '_umount_tracked; _cleanup' EXIT
}

_umount_tracked() {
  local i m
  for ((i = ${#_TRACKED_MOUNTS[@]} - 1; i >= 0; i--)); do
    m=${_TRACKED_MOUNTS[i]}
    findmnt -M "$m" > /dev/null 2>&1 || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# is_fuse_mount DIR: DIR is the mount point of a blockrep FUSE mount right now.
is_fuse_mount() { [ "$(findmnt -n -o FSTYPE -M "$1" 2>/dev/null)" = fuse.blockrep ]; }

# --- crashes and the journal ------------------------------------------------------------------

# kill9_source: SIGKILL the server (a crash: no cleanup runs) and reap it.
kill9_source() {
  [ -n "$SOURCE_PID" ] || fail "kill9_source: server not running"
  kill -KILL "$SOURCE_PID" 2>/dev/null || true
  wait_exit "$SOURCE_PID" 10 || fail "server survived SIGKILL"
  wait "$SOURCE_PID" 2>/dev/null || true
  SOURCE_PID=""
}

# reap_client PID [SECONDS]: wait (default 3 s) for a client whose server was just killed to
# exit, then SIGKILL it. fio 3.33's nbd engine does not always notice a dead server: it can
# spin in io_u_quiesce printing "nbd_poll: nothing to poll for in state DEAD" without end
# (gigabytes of log a minute). The client's exit status is not what such a test checks.
# fio runs each job in a child process (unless --thread): the children are killed too.
reap_client() {
  if ! wait_exit "$1" "${2:-3}"; then
    pkill -KILL -P "$1" 2>/dev/null || true
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}

BLOCKREP_CLI=${BLOCKREP_CLI:-$REPO/build/blockrep}

# journal_verify DISK [BACKING]: `blockrep journal verify` on $STATE; with BACKING also checks
# the disk holds the journal's view. Fails the test (printing the report) if it is not OK.
journal_verify() {
  local out rc=0
  out=$("$BLOCKREP_CLI" journal verify --state-dir "$STATE" --disk "$1" ${2:+--backing "$2"} 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "$out"
    fail "blockrep journal verify --disk $1${2:+ --backing $2} exited $rc"
  fi
}

# state_field DISK KEY: a value from $STATE/disks/DISK/state.json.
state_field() {
  /usr/bin/python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print(str(v).lower() if isinstance(v, bool) else v)' \
    "$STATE/disks/$1/state.json" "$2"
}
