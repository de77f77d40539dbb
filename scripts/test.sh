#!/usr/bin/env bash
# Sets up, builds and runs every test: once plain, once under ASan+UBSan, and (with clang) each
# fuzz harness of tests/fuzz for a fixed number of runs under libFuzzer, ASan and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
(cd build && ctest --output-on-failure -j2)
scripts/setup.sh build-asan -DPST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)
# The fuzz build is its own clang build of the libraries and the harnesses alone.
if command -v clang >/dev/null 2>&1; then
  CC=clang scripts/setup.sh build-fuzz -DPST_FUZZ=ON
  (cd build-fuzz && ctest --output-on-failure -L fuzz)
else
  echo "test.sh: fuzz stage skipped: clang not installed (Debian packages clang and libclang-rt-14-dev)"
fi
