#!/usr/bin/env bash
# Installs pstrain's Debian 12 dependencies (as root, or through sudo) and builds into build/.
# Usage: scripts/setup.sh [build-dir] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true

# protobuf-compiler (protoc) and python3 are only for the tests: they decode the TFRecord,
# Example and event files pstrain writes with tools that share none of its code;
# python3-protobuf and libprotobuf-dev (google/protobuf/any.proto) let tests/tf_defs_check.py
# decode pstrain's graphs and checkpoints with TensorFlow's own .proto files.
PKGS="build-essential cmake pkg-config libopenblas-dev zlib1g-dev check libsubunit-dev
      libcjson-dev libsnappy-dev libjpeg-dev libpng-dev libprotobuf-c-dev protobuf-c-compiler libgrpc-dev
      dataset-fashion-mnist clang libclang-rt-14-dev protobuf-compiler python3
      python3-protobuf libprotobuf-dev openssh-server libopenmpi-dev openmpi-bin"
# A single-node Slurm for tests/test_slurm.sh (about 3 MB). Debian starts a package's services
# when it installs it; the test starts its own daemons with its own configuration, so the
# install below forbids service starts (policy-rc.d, which invoke-rc.d and deb-systemd-invoke
# obey) unless the machine already has a policy of its own.
SLURM_PKGS="slurmctld slurmd slurm-client munge"
PKGS="$PKGS $SLURM_PKGS"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs packages\nexit 101\n' |
      $SUDO tee "$policy" >/dev/null
    own_policy=1
    trap '$SUDO rm -f "$policy"' EXIT
    $SUDO chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
  if [ "$own_policy" = 1 ]; then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
fi

cmake -S . -B "$BUILD" "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
