#!/usr/bin/env bash
# SimpleCNN training throughput with 2 workers against 1 worker (1 PS, batch 100 each, async),
# measured in the same run, median of RUNS jobs each. Throughput of a job = the sum of its
# workers' examples/s (each worker times its own training loop, after start-up).
#
#   bench/run_scaling_bench.sh [steps per worker] [runs]     (default 150 and 3)
#
# Two settings: every worker on 1 thread (adding a worker adds a core), and the same 2 cores in
# both jobs (1 worker with 2 threads against 2 workers with 1 thread each).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-150}"
runs="${2:-3}"
build="${PST_BUILD:-$here/build}"
export OPENBLAS_NUM_THREADS=1

job_rate() { # workers threads -> examples/s of the whole job
  local workers="$1" threads="$2" dir
  dir="$(mktemp -d /tmp/pstrain-scale.XXXXXX)"
  PST_JOB_DIR="$dir" "$here/scripts/local_cluster.sh" --ps 1 --workers "$workers" --build "$build" -- \
    --model simple_cnn --batch 100 --steps $((steps * workers)) --threads "$threads" --quiet \
    >/dev/null 2>&1 || { echo "scaling bench: job failed, logs in $dir" >&2; exit 1; }
  grep -h "local steps in" "$dir"/worker-*.log |
    sed -E 's/.*\(([0-9.]+) examples\/s\).*/\1/' | awk '{s += $1} END {printf "%.1f\n", s}'
  rm -rf "$dir"
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A rate
for setting in "1 1" "2 1" "1 2"; do
  read -r w t <<<"$setting"
  vals=""
  for ((r = 0; r < runs; r++)); do vals+="$(job_rate "$w" "$t")"$'\n'; done
  rate["$w/$t"]="$(printf '%s' "$vals" | median)"
  echo "workers=$w threads/worker=$t: ${rate[$w/$t]} examples/s (median of $runs: $(echo $vals))"
done
awk -v a="${rate[2/1]}" -v b="${rate[1/1]}" -v c="${rate[1/2]}" 'BEGIN {
  printf "2 workers / 1 worker, 1 thread each:          %.2fx  (target >= 1.6)\n", a / b
  printf "2 workers x 1 thread / 1 worker x 2 threads:  %.2fx\n", a / c }'
