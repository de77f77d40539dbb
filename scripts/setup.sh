#!/usr/bin/env bash
# Installs pstrain's Debian 12 dependencies (as root, or through sudo) and builds into build/.
# Usage: scripts/setup.sh [build-dir] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true

# protobuf-compiler (protoc) and python3 are only for the tests: they decode the TFRecord,
# Example and event files pstrain writes with tools that share none of its code.
PKGS="build-essential cmake pkg-config libopenblas-dev zlib1g-dev check libsubunit-dev
      libcjson-dev libsnappy-dev libprotobuf-c-dev protobuf-c-compiler libgrpc-dev
      dataset-fashion-mnist protobuf-compiler python3"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

cmake -S . -B "$BUILD" "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
