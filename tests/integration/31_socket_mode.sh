#!/usr/bin/env bash
# The unix socket is created with mode 0600 (owner read/write only), whatever the umask, and
# a stale file at the socket path (left by a killed daemon) is replaced (README: "a stale
# socket is replaced"): the server starts and answers on it.
. "$(dirname "$0")/../lib/common.sh"

make_disk "$T/a.img" 4M
umask 000
start_source --disk "disk=$T/a.img" --nbd "unix:$SOCK"
mode=$(stat -c %a "$SOCK")
[ "$mode" = 600 ] || fail "socket mode is $mode with umask 000, expected 600"
[ "$(stat -c %U "$SOCK")" = "$(id -un)" ] || fail "socket owned by $(stat -c %U "$SOCK"), expected $(id -un)"
stop_source

# a stale socket (nobody listening) at the path
umask 077
/usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/stale.sock"
[ -S "$T/stale.sock" ] || fail "could not create a stale socket for the test"
start_source --disk "disk=$T/a.img" --nbd "unix:$T/stale.sock"
mode=$(stat -c %a "$T/stale.sock")
[ "$mode" = 600 ] || fail "replaced socket mode is $mode, expected 600"
timeout 20 nbdinfo --size "$(uri disk "$T/stale.sock")" > /dev/null || fail "server does not answer on the replaced stale socket"
stop_source
pass
