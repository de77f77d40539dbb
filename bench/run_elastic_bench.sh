#!/usr/bin/env bash
# Elastic jobs (README "Elastic jobs"), SimpleCNN, batch 100, 1 PS, every worker on 1 thread,
# asynchronous. Each run launches a job with 1 worker, measures the job's examples/s (global
# steps x batch / time, from RUN/state.json) over a window, runs `pstrain scale RUN --workers 2`,
# and measures the same window again once the new worker trains. It prints per run:
#   - join: seconds from `pstrain scale` to the new worker's first applied gradient, less the
#     time it spent loading the data set (both from its log)            target <= 5 s
#   - after / before: the job's examples/s with 2 workers over with 1   target >= 1.6x
# and the medians over the runs (before and after alternate within every run, so both see
# the same machine noise).
#
#   bench/run_elastic_bench.sh [window seconds] [runs]     (default 20 and 3)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
window="${1:-20}"
runs="${2:-3}"
build="${PST_BUILD:-$here/build}"
pstrain="$build/launcher/pstrain"
export OPENBLAS_NUM_THREADS=1

state() { # RUN KEY -> a top-level number of state.json
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/state.json")).get(sys.argv[2], 0))' "$1" "$2" 2>/dev/null || echo 0
}
rate() { # RUN -> examples/s of the whole job over the window
  local run="$1" s0 s1 t0 t1
  s0="$(state "$run" global_step)"; t0="$(date +%s.%N)"
  sleep "$window"
  s1="$(state "$run" global_step)"; t1="$(date +%s.%N)"
  awk -v a="$s0" -v b="$s1" -v t="$t0" -v u="$t1" 'BEGIN { printf "%.1f\n", (b - a) * 100 / (u - t) }'
}
wait_for() { # seconds command... : polls until the command succeeds
  local secs="$1"; shift
  for ((i = 0; i < secs * 5; i++)); do "$@" && return 0; sleep 0.2; done
  return 1
}
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
run_dir_of() { compgen -G "$1/runs/*/state.json" >/dev/null; } # the launcher wrote its state
step_at_least() { [ "$(state "$1" global_step | cut -d. -f1)" -ge "$2" ]; }
launcher=""
cleanup() { # a failed run leaves no job behind
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
    kill -INT "$launcher"; sleep 0.5; kill -INT "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
}
trap cleanup EXIT

joins="" ratios=""
for ((r = 1; r <= runs; r++)); do
  dir="$(mktemp -d /tmp/pstrain-elastic.XXXXXX)"
  cat >"$dir/job.json" <<JOB
{"name": "elastic", "cluster": {"ps": 1, "worker": 1}, "run_dir": "$dir/runs",
 "model": "simple_cnn", "batch": 100, "steps": 1000000, "threads": 1, "heartbeat_ms": 500}
JOB
  "$pstrain" launch "$dir/job.json" --quiet >"$dir/launch.log" 2>&1 &
  launcher=$!
  wait_for 60 run_dir_of "$dir" || { echo "elastic bench: no run started, see $dir" >&2; exit 1; }
  run="$(ls -d "$dir/runs"/*)"
  wait_for 180 step_at_least "$run" 50 || { echo "elastic bench: no training in $run" >&2; exit 1; }
  before="$(rate "$run")"
  t_scale="$(date +%s.%N)"
  "$pstrain" scale "$run" --workers 2 >/dev/null
  wait_for 120 grep -q "first gradient applied" "$run/logs/worker1.log" ||
    { echo "elastic bench: the new worker never trained, see $run" >&2; exit 1; }
  first="$(sed -nE 's/.*first gradient applied.*unix time ([0-9.]+).*/\1/p' "$run/logs/worker1.log")"
  load="$(sed -nE 's/.*data loaded in ([0-9.]+) s.*/\1/p' "$run/logs/worker1.log")"
  sleep 2 # the new worker's first steps, then the window
  after="$(rate "$run")"
  "$pstrain" stop "$run" >/dev/null 2>&1 || true
  wait "$launcher" || true
  launcher=""
  join="$(awk -v a="$first" -v s="$t_scale" -v l="${load:-0}" 'BEGIN { printf "%.2f\n", a - s - l }')"
  ratio="$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f\n", a / b }')"
  echo "run $r: join ${join} s (data loading ${load:-?} s left out); examples/s ${before} -> ${after}: ${ratio}x"
  joins+="$join"$'\n'; ratios+="$ratio"$'\n'
  rm -rf "$dir"
done
echo "median join time: $(printf '%s' "$joins" | median) s   (target <= 5 s)"
echo "median examples/s after/before (1 -> 2 workers): $(printf '%s' "$ratios" | median)x   (target >= 1.6x)"
