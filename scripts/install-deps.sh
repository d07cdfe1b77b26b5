#!/usr/bin/env bash
# Installs the Debian packages blockrep needs to build, test, demo and benchmark, and only
# those that are missing: a no-op in about a second when everything is present.
set -euo pipefail

packages=(
  # build
  g++ make pkg-config liburing-dev libsystemd-dev libxxhash-dev libgtest-dev libfuse3-dev
  libtomlplusplus-dev nlohmann-json3-dev libssl-dev libzstd-dev
  # the libFuzzer target
  clang libclang-rt-14-dev
  # real clients for the integration tests, the demo and the benchmark
  fio libnbd-bin python3-libnbd qemu-utils nbdkit
  # FUSE front door: fusermount3, and ext4 on a loop device in the tests
  fuse3 e2fsprogs util-linux
  # replication tests: certificates, network namespaces, a dropped link; the resync benchmark
  openssl iproute2 iptables rsync
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
