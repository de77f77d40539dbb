#!/usr/bin/env bash
# Installs PyTorch from Debian (python3-torch) if needed, builds, and runs bench_train.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch
fi
scripts/setup.sh build
build/bench/bench_train build .
