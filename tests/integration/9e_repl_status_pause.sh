#!/usr/bin/env bash
# `blockrep status` on both daemons, `pause`, `resume` and a drain that cannot finish:
# status (table and --json) shows the documented fields on the source (state, RPO now /
# p50 / p99, throughput, journal use, acked seq) and on the target (each replica's state and
# durable seq); `blockrep pause vm1` stops shipping: the state is "paused", writes fill the
# journal, the acked seq and the target's durable seq stay put and the RPO grows;
# `blockrep resume vm1` ships the backlog (drain, verify equal); with the target stopped,
# `blockrep drain --timeout 2` fails within the timeout with a message that says why.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

MiB=$((1 << 20))
make_disk "$T/disk.img" 64M
start_target
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
wait_disk_state vm1 protected
# Nothing written yet: the target's durable point is where the source's stream began, the
# same seq the source counts as acknowledged (not behind it).
[ "$(replica_field vm1 durable_through)" = "$(disk_field vm1 acked_seq)" ] ||
  fail "after the initial copy the target is durable through $(replica_field vm1 durable_through), the source acked $(disk_field vm1 acked_seq)"

# nbd_write OFFSET_MIB SIZE_MIB: sequential 1 MiB writes of random data through NBD.
nbd_write() {
  fio --name=w --ioengine=nbd --uri="$(uri vm1)" --rw=write --bs=1m --offset="$1M" --size="$2M" \
      --iodepth=4 --refill_buffers --output-format=terse > "$T/fio.out" 2>&1 ||
    { cat "$T/fio.out"; fail "fio could not write ${2} MiB at ${1} MiB"; }
}
nbd_write 0 4
drain vm1

# --- status: the documented fields ---------------------------------------------------------
status_json "$STATE" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
d = [d for d in j["disks"] if d["name"] == "vm1"][0]
for k in ("state", "rpo_ms", "rpo_p50_ms", "rpo_p99_ms", "throughput_bytes_per_s", "journal_bytes",
          "journal_max_bytes", "acked_seq", "next_seq", "connected", "replica_state", "detail"):
    assert k in d, "source status lacks %s: %s" % (k, sorted(d))
assert d["state"] == "protected" and d["replica_state"] == "in-sync", d
for k in ("rpo_ms", "rpo_p50_ms", "rpo_p99_ms", "throughput_bytes_per_s", "journal_bytes", "acked_seq"):
    assert isinstance(d[k], int) and d[k] >= 0, "%s: %r" % (k, d[k])
assert 0 < d["acked_seq"] < d["next_seq"], "acked %d, next %d" % (d["acked_seq"], d["next_seq"])
' || fail "the source's status --json lacks documented fields"
status_json "$TSTATE" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["daemon"] == "blockrep-target", j
r = [r for r in j["replicas"] if r["name"] == "vm1"][0]
for k in ("state", "durable_through", "source", "connected", "disk_bytes"):
    assert k in r, "target status lacks %s: %s" % (k, sorted(r))
assert r["state"] == "in-sync" and r["durable_through"] > 0 and r["connected"] is True, r
' || fail "the target's status --json lacks documented fields"
"$BLOCKREP_CLI" status --state-dir "$STATE" > "$T/st.txt"
cat "$T/st.txt"
head -n 2 "$T/st.txt" | grep -q "^DISK *STATE *RPO *RPO P50 *RPO P99 *THROUGHPUT *JOURNAL *DETAIL" ||
  fail "the source's status table lacks its header"
grep -q "^vm1 *protected *[0-9.]*s *[0-9.]*s *[0-9.]*s .*/s .*(.*%)" "$T/st.txt" ||
  fail "the source's status table does not show vm1 with state, RPOs, throughput and journal"
"$BLOCKREP_CLI" status --state-dir "$TSTATE" > "$T/tst.txt"
cat "$T/tst.txt"
grep -q "^REPLICA *STATE *SOURCE *CONNECTED *DURABLE SEQ" "$T/tst.txt" || fail "the target's status table lacks its header"
grep -q "^vm1 *in-sync *site-a *yes *[1-9][0-9]* " "$T/tst.txt" || fail "the target's status table does not show vm1 in sync"

# --- pause: the journal keeps every write, nothing ships -----------------------------------
"$BLOCKREP_CLI" pause vm1 --state-dir "$STATE" | grep -q "paused" || fail "pause did not say so"
wait_disk_state vm1 paused 10
acked0=$(disk_field vm1 acked_seq)
journal0=$(disk_field vm1 journal_bytes)
durable0=$(replica_field vm1 durable_through)
nbd_write 8 24
deadline=$((SECONDS + 10))
until [ "$(disk_field vm1 rpo_ms)" -ge 500 ]; do  # the oldest unshipped write ages
  [ $SECONDS -lt $deadline ] || fail "RPO did not grow while paused (rpo_ms $(disk_field vm1 rpo_ms))"
  sleep 0.1
done
json=$(status_json "$STATE")
state=$(_json_field "$json" disks vm1 state)
acked1=$(_json_field "$json" disks vm1 acked_seq)
next1=$(_json_field "$json" disks vm1 next_seq)
journal1=$(_json_field "$json" disks vm1 journal_bytes)
rpo1=$(_json_field "$json" disks vm1 rpo_ms)
durable1=$(replica_field vm1 durable_through)
echo "paused: journal $((journal0 / MiB)) -> $((journal1 / MiB)) MiB, acked seq $acked0 -> $acked1 (next $next1), target durable $durable0 -> $durable1, RPO ${rpo1} ms"
[ "$state" = paused ] || fail "state $state after writes while paused"
[ "$acked1" = "$acked0" ] || fail "acked seq moved while paused: $acked0 -> $acked1"
[ "$durable1" = "$durable0" ] || fail "the target's durable seq moved while paused: $durable0 -> $durable1"
[ "$journal1" -ge $((journal0 + 24 * MiB)) ] || fail "the journal grew by $((journal1 - journal0)) bytes for 24 MiB written while paused"
[ "$next1" -gt $((acked1 + 1)) ] || fail "no write waits to be shipped while paused"
"$BLOCKREP_CLI" status --state-dir "$STATE" | grep -q "^vm1 *paused" || fail "the status table does not show paused"

# --- resume: the backlog ships -----------------------------------------------------------
"$BLOCKREP_CLI" resume vm1 --state-dir "$STATE" | grep -q "resumed" || fail "resume did not say so"
drain vm1 30
verify_equal vm1 "$T/disk.img"
acked2=$(disk_field vm1 acked_seq)
[ "$acked2" -ge $((next1 - 1)) ] || fail "after resume acked seq $acked2 < $((next1 - 1))"
tput=$(disk_field vm1 throughput_bytes_per_s)
[ "$tput" -gt 0 ] || fail "throughput 0 just after shipping 24 MiB"
deadline=$((SECONDS + 10))
until [ "$(disk_field vm1 rpo_ms)" = 0 ]; do
  [ $SECONDS -lt $deadline ] || fail "RPO did not return to 0 after the backlog shipped"
  sleep 0.1
done
echo "resumed: acked seq $acked2, throughput $tput B/s, RPO 0"

# --- drain that cannot finish ---------------------------------------------------------------
stop_target
nbd_write 40 1
start_ms=$(date +%s%3N)
rc=0
out=$("$BLOCKREP_CLI" drain vm1 --timeout 2 --state-dir "$STATE" 2>&1) || rc=$?
took_ms=$(( $(date +%s%3N) - start_ms ))
echo "drain with the target stopped: exit $rc after $took_ms ms: $out"
[ "$rc" -ne 0 ] || fail "drain succeeded with the target stopped"
case $out in *"not drained after 2000 ms"*"state "*"holds seq "*) ;; *) fail "drain's message does not say why: $out" ;; esac
case $out in *"state protected"*) fail "drain blames a protected disk: $out" ;; esac
[ "$took_ms" -lt 7000 ] || fail "drain --timeout 2 took $took_ms ms"
stop_source
pass "status fields on both daemons; paused: journal +$(((journal1 - journal0) / MiB)) MiB, acked seq held at $acked0, RPO ${rpo1} ms; resumed to seq $acked2 at $tput B/s; drain without target failed in $took_ms ms"
