#!/usr/bin/env bash
# Test certificates for the replication link's TLS (docs/formats/replication.md, "Transport").
#
#   tests/lib/make_certs.sh DIR NAME...
#   CA_NAME=other tests/lib/make_certs.sh DIR NAME...
#
# Makes, with the openssl CLI, in DIR (created if missing):
#   ca.crt, ca.key        a CA with subject CN "blockrep test CA" (kept if ca.crt exists, so
#                         later calls add names signed by the same CA)
#   NAME.crt, NAME.key    for each NAME: a certificate with subject CN=NAME (the peer identity),
#                         extendedKeyUsage serverAuth+clientAuth (one certificate serves either
#                         role), signed by that CA
# With CA_NAME=X the CA is instead X-ca.crt / X-ca.key (CN "blockrep test CA X"), a second CA
# independent of the first, and the NAMEs are signed by it: that makes "a certificate from
# another CA". Those NAMEs must differ from the ones signed by ca.crt in the same DIR, since
# the files are named after the NAME alone. Example:
#
#   make_certs.sh "$T" source target && CA_NAME=other make_certs.sh "$T" intruder
#
# Keys are EC P-256, unencrypted, mode 0600; certificates are valid for 10 days from now.
# Prints nothing on success; on failure prints openssl's output and exits non-zero.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: [CA_NAME=X] $0 DIR NAME..." >&2
  exit 2
fi
dir=$1
shift
ca=${CA_NAME:+$CA_NAME-}ca
ca_cn="blockrep test CA${CA_NAME:+ $CA_NAME}"
days=10

mkdir -p "$dir"
umask 077

# Runs a command, showing its chatter only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "make_certs.sh: failed: $*" >&2
    exit 1
  fi
}

if [ ! -f "$dir/$ca.crt" ]; then
  quiet openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$ca.key" -out "$dir/$ca.crt" -days "$days" -subj "/CN=$ca_cn" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
fi

ext=$dir/.leaf.ext
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth,clientAuth" > "$ext"
for name in "$@"; do
  quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name"
  quiet openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -CAserial "$dir/$ca.srl" -days "$days" -extfile "$ext" -out "$dir/$name.crt"
  rm -f "$dir/$name.csr"
done
rm -f "$ext"
# Certificates are public; only the keys stay private.
chmod 0644 "$dir/$ca.crt"
for name in "$@"; do chmod 0644 "$dir/$name.crt"; done
