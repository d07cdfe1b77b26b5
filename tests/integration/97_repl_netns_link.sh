#!/usr/bin/env bash
# Replication over a real link that fails: the source and the target run in two network
# namespaces joined by a veth pair (10.231.X.1 and .2), fio writes through the source's
# NBD socket from the source's namespace. (1) The link goes down for a few seconds under
# writes: TCP neither delivers nor resets, so the stream stalls (the acked seq stays behind
# the journal, the RPO grows) within the same connection, and once the link is back up it
# simply continues (no reconnect) and drains. (2) An iptables REJECT --reject-with tcp-reset
# in the target's namespace breaks the connection at once: the source shows the disk
# disconnected, retries on its schedule (refused each time) while writes go on, and once the
# rule is gone reconnects, resumes in delta mode and drains; the replica equals the disk.
. "$(dirname "$0")/../lib/common.sh"
net=$((($$ % 250) + 1))
TARGET_HOST=10.231.$net.2  # repl.sh builds TADDR from it
. "$(dirname "$0")/../lib/repl.sh"

NS_S=brsrc$$
NS_T=brtgt$$
VETH_S=vbs$$
VETH_T=vbt$$
del_netns() {
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_T" 2>/dev/null || true
}
# Daemons first (they live in the namespaces), then the namespaces, then the rest.
trap '_stop_target_quietly; [ -z "$SOURCE_PID" ] || kill -TERM "$SOURCE_PID" 2>/dev/null; wait_exit "${SOURCE_PID:-0}" 10 || true; del_netns; _cleanup' EXIT
del_netns  # left over by an earlier run with the same pid, if any
ip netns add "$NS_S"
ip netns add "$NS_T"
ip link add "$VETH_S" type veth peer name "$VETH_T"
ip link set "$VETH_S" netns "$NS_S"
ip link set "$VETH_T" netns "$NS_T"
ip -n "$NS_S" addr add "10.231.$net.1/24" dev "$VETH_S"
ip -n "$NS_T" addr add "10.231.$net.2/24" dev "$VETH_T"
for ns in "$NS_S" "$NS_T"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" link set "$VETH_S" up
ip -n "$NS_T" link set "$VETH_T" up

SOURCE_NETNS=$NS_S
TARGET_NETNS=$NS_T
make_disk "$T/disk.img" 128M
start_target
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
wait_disk_state vm1 protected
echo "source in $NS_S replicates to $TADDR in $NS_T"

# writes SECONDS SEED: random 16 KiB writes at 4 MiB/s from the source's namespace, in the
# background; sets fio_pid.
writes() {
  ip netns exec "$NS_S" fio --name=w --ioengine=nbd --uri="$(uri vm1)" --rw=randwrite --bs=16k \
    --size=96M --iodepth=4 --rate=4m --refill_buffers --time_based --runtime="$1" \
    --randseed="$2" --output-format=terse > "$T/fio-$2.out" 2>&1 &
  fio_pid=$!
  track_pid "$fio_pid"
}
# wait_seq_growth FIELD N SECONDS: until the source's FIELD grew by N.
wait_seq_growth() {
  local from deadline=$((SECONDS + $3))
  from=$(disk_field vm1 "$1")
  until [ "$(disk_field vm1 "$1")" -ge $((from + $2)) ]; do
    [ $SECONDS -lt $deadline ] || fail "$1 did not grow by $2 within $3 s (state $(disk_field vm1 state))"
    sleep 0.1
  done
}

# --- 1. the link goes down and comes back -------------------------------------------------
writes 8 971
wait_seq_growth acked_seq 50 10
attempts=$(disk_field vm1 connect_attempts)
ip -n "$NS_S" link set "$VETH_S" down
acked_down=$(disk_field vm1 acked_seq)
wait_seq_growth next_seq 300 10
deadline=$((SECONDS + 10))
until [ "$(disk_field vm1 rpo_ms)" -ge 1500 ]; do
  [ $SECONDS -lt $deadline ] || fail "the RPO did not grow with the link down (rpo_ms $(disk_field vm1 rpo_ms))"
  sleep 0.1
done
json=$(status_json "$STATE")
acked=$(_json_field "$json" disks vm1 acked_seq)
next=$(_json_field "$json" disks vm1 next_seq)
rpo=$(_json_field "$json" disks vm1 rpo_ms)
echo "link down: acked seq $acked_down -> $acked, journal at $((next - 1)), RPO $rpo ms, state $(_json_field "$json" disks vm1 state)"
[ $((next - 1 - acked)) -ge 300 ] || fail "the target kept up with the link down: acked $acked of $((next - 1))"
ip -n "$NS_S" link set "$VETH_S" up
wait "$fio_pid" || { cat "$T/fio-971.out"; fail "fio failed during the link outage"; }
drain vm1 60
attempts_after=$(disk_field vm1 connect_attempts)
[ "$attempts_after" = "$attempts" ] || fail "the source reconnected ($attempts -> $attempts_after attempts): the stream should have carried on"
[ "$(disk_field vm1 failures_in_row)" = 0 ] || fail "the outage counted as a failure"
echo "link up: the same connection carried on and drained"

# --- 2. the target's side resets the connection ---------------------------------------------
reject=(INPUT -p tcp --dport "$TPORT" -j REJECT --reject-with tcp-reset)
writes 8 972
wait_seq_growth acked_seq 50 10
ip netns exec "$NS_T" iptables -I "${reject[@]}"
wait_disk_state vm1 disconnected 15
err=$(disk_field vm1 last_error)
echo "reset: $err"
case $err in *reset*|*refused*|*"connection closed"*|*"Broken pipe"*) ;; *) fail "the error does not say the connection broke: $err" ;; esac
deadline=$((SECONDS + 20))
until [ "$(disk_field vm1 failures_in_row)" -ge 3 ]; do
  [ $SECONDS -lt $deadline ] || fail "no retries while the target's side rejects (failures $(disk_field vm1 failures_in_row))"
  sleep 0.1
done
retries=$(grep -o "retry [0-9]* in [0-9]* ms" "$SOURCE_LOG" | tail -n 3 | paste -sd, -)
echo "retrying: $retries; $(disk_field vm1 detail)"
alive "$fio_pid" || { cat "$T/fio-972.out"; fail "fio stopped while the target was unreachable"; }
ip netns exec "$NS_T" iptables -D "${reject[@]}"
deltas=$(grep -c "delta from seq" "$SOURCE_LOG" || true)
wait_disk_state vm1 protected 20
wait "$fio_pid" || { cat "$T/fio-972.out"; fail "fio failed while the target was unreachable"; }
drain vm1 60
[ "$(grep -c "delta from seq" "$SOURCE_LOG")" -gt "$deltas" ] || fail "the source did not resume in delta mode"
verify_equal vm1 "$T/disk.img"
attempts_end=$(disk_field vm1 connect_attempts)
stop_source
stop_target
pass "link down: stalled at acked seq $acked with the journal at $((next - 1)) (RPO $rpo ms), same connection resumed; tcp-reset: disconnected ($err), retries $retries, $((attempts_end - attempts)) connection attempts until it reconnected in delta mode; equal"
