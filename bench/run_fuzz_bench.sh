#!/usr/bin/env bash
# Runs every fuzz harness of tests/fuzz (or those named) for at least RUNS executions
# (default 1000000) under libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer, one after
# the other, and prints per harness: executions, crashes (crash, leak, out-of-memory and
# timeout reports; 0 expected), the corpus it ended with and the seconds it took. Exits 1 when
# any harness reported a crash; the inputs are in build-fuzz/tests/fuzz/work/NAME/.
#
#   bench/run_fuzz_bench.sh                       # all harnesses, 10^6 executions each
#   RUNS=100000 bench/run_fuzz_bench.sh bundle npz
#
# Builds build-fuzz (CC=clang, -DPST_FUZZ=ON) first. New inputs the fuzzer finds collect in
# build-fuzz/tests/fuzz/work/NAME/corpus, so later runs start from them as well as from the
# seeds in tests/fuzz/corpus/NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000}
BUILD=${BUILD:-build-fuzz}
if ! command -v clang >/dev/null 2>&1; then
  echo "run_fuzz_bench: clang is not installed (Debian packages clang and libclang-rt-14-dev)" >&2
  exit 2
fi
[ -f "$BUILD/CMakeCache.txt" ] || CC=clang cmake -S . -B "$BUILD" -DPST_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j2 --target fuzz >/dev/null

if [ $# -gt 0 ]; then
  names="$*"
else
  names=$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')
fi

bin=$BUILD/tests/fuzz
failed=0
rows=""
for name in $names; do
  work=$bin/work/$name
  mkdir -p "$work/corpus"
  seeds=tests/fuzz/corpus/$name
  [ -d "$seeds" ] || seeds=""
  before=$(ls "$work" | grep -cE '^(crash|leak|oom|timeout)-' || true)
  log=$work/bench.log
  start=$(date +%s.%N)
  set +e
  "$bin/fuzz_$name" -runs="$RUNS" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" $seeds >"$log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(grep -oE 'corp: [0-9]+/[0-9]+(b|Kb|Mb)' "$log" | tail -1 | sed 's/corp: //' || true)
  after=$(ls "$work" | grep -cE '^(crash|leak|oom|timeout)-' || true)
  crashes=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi  # died without an artifact
  [ "$crashes" -eq 0 ] || failed=1
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  rows="$rows$(printf '%-12s %12s %8s %14s %8s' "$name" "${execs:-?}" "$crashes" "${corpus:-?}" "$secs")\n"
  printf '%-12s %12s execs, %s crashes, corpus %s, %ss\n' "$name" "${execs:-?}" "$crashes" \
    "${corpus:-?}" "$secs" >&2
done

printf '\n%-12s %12s %8s %14s %8s\n' harness executions crashes "corpus (n/size)" seconds
printf "$rows"
exit $failed
