#!/usr/bin/env bash
# A source whose certificate comes from another CA is refused at the TLS handshake: the
# source shows the disk in the error state with the reason, and does not retry (the target
# counts exactly one refused handshake over many retry units); `blockrep resume` retries
# once more (and is refused again). A target certificate from another CA is refused by the
# source the same way.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/repl.sh"

make_disk "$T/disk.img" 16M
start_target
bad_args=(--target "$TADDR" --tls-cert "$CERTS/mallory.crt" --tls-key "$CERTS/mallory.key"
          --tls-ca "$CERTS/ca.crt" --retry-unit "$RETRY_UNIT")
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${bad_args[@]}"
wait_disk_state vm1 error 20
err=$(disk_field vm1 error)
echo "source says: $err"
case $err in *certificate*) ;; *) fail "the error does not name the certificate: $err" ;; esac
# 30 retry units: a transient error would have been retried 5 times by now.
sleep 3
[ "$(replica_field vm1 state)" = new ] || fail "the target accepted something"
refused=$(status_json "$TSTATE" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tls_refused"])')
attempts=$(disk_field vm1 connect_attempts)
[ "$refused" = 1 ] || fail "the target saw $refused refused handshakes, expected exactly 1 (no retries)"
[ "$attempts" = 1 ] || fail "the source made $attempts connection attempts, expected 1"
grep -q "blockrep resume vm1" "$SOURCE_LOG" || fail "the log does not say how to go on"
"$BLOCKREP_CLI" status --state-dir "$STATE" | grep -q "error: .*certificate" || fail "status table does not show the error"

# resume: one more attempt, refused again.
"$BLOCKREP_CLI" resume vm1 --state-dir "$STATE" > /dev/null
deadline=$((SECONDS + 20))
until [ "$(disk_field vm1 connect_attempts)" = 2 ] && [ "$(disk_field vm1 state)" = error ]; do
  [ $SECONDS -lt $deadline ] || fail "resume did not lead to exactly one more refused attempt"
  sleep 0.1
done
stop_source

# The other way round: the target's certificate is not from the source's CA.
stop_target
"$REPO/build/blockrep-target" --listen "$TADDR" --state-dir "$TSTATE" \
  --tls-cert "$CERTS/mallory.crt" --tls-key "$CERTS/mallory.key" --tls-ca "$CERTS/ca.crt" \
  --disk vm1=site-a 2>> "$TARGET_LOG" &
TARGET_PID=$!
start_source --disk "vm1=$T/disk.img" --nbd "unix:$SOCK" "${REPL_ARGS[@]}"
wait_disk_state vm1 error 20
err=$(disk_field vm1 error)
case $err in *certificate*) ;; *) fail "a target from another CA: the error does not name the certificate: $err" ;; esac
stop_source
pass "certificates from another CA refused both ways, no retries: $err"
