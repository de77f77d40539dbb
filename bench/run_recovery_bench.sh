#!/usr/bin/env bash
# What a user waits for when `pstrain launch` starts a job and when a task dies, measured on a
# 2 PS + 2 worker SimpleCNN job (batch 100, 1 thread per worker, a checkpoint every 100 steps),
# TRIALS trials each, medians:
#   - launch: seconds from `pstrain launch` to the job's first global step;
#   - PS killed (SIGKILL of ps1): seconds until the job trains again past the checkpoint it
#     restored, and the steps lost (global step at the kill minus the restored step; the target
#     is at most one checkpoint interval, 100);
#   - worker killed (SIGKILL of worker1): seconds until its next incarnation reports steps again.
#
#   bench/run_recovery_bench.sh [trials]          (default 5)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
trials="${1:-5}"
pstrain="${PST_BUILD:-$here/build}/launcher/pstrain"
export OPENBLAS_NUM_THREADS=1
work="$(mktemp -d /tmp/pstrain-recovery.XXXXXX)"
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

now() { date +%s.%N; }
# state.json's field (python: a reader that never sees a half-written file, the launcher
# renames it into place)
field() { # run expression
  python3 -c "import json,sys; s=json.load(open('$1/state.json')); print(eval(sys.argv[1]))" \
    "$2" 2>/dev/null || echo ""
}
task_field() { field "$1" "[t['$3'] for t in s['tasks'] if t['task'] == '$2'][0]"; }
wait_until() { # seconds command...: polls every 50 ms
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
step_above() { local s; s=$(field "$1" "s['global_step']"); [ -n "$s" ] && python3 -c "import sys; sys.exit(0 if $s > $2 else 1)"; }
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

start_job() { # name -> run dir in $run, launcher pid in $lpid
  cat >"$work/$1.json" <<EOF
{"name": "$1", "cluster": {"ps": 2, "worker": 2}, "run_dir": "$work/runs", "model": "simple_cnn",
 "optimizer": "adam", "learning_rate": 0.0001, "batch": 100, "steps": 100000, "threads": 1,
 "save_every_steps": 100, "heartbeat_ms": 200, "restarts": {"max": 50, "backoff_ms": 200}}
EOF
  t0=$(now)
  "$pstrain" launch "$work/$1.json" --quiet >"$work/$1.log" 2>&1 &
  lpid=$!
  wait_until 60 bash -c "ls -d $work/runs/$1-* >/dev/null 2>&1"
  run=$(ls -d "$work"/runs/"$1"-* | head -n 1)
}
stop_job() { "$pstrain" stop "$run" --kill >/dev/null 2>&1 || true; wait "$lpid" 2>/dev/null || true; }

for i in $(seq "$trials"); do
  # launch, then a PS kill once a checkpoint exists
  start_job "ps$i"
  wait_until 300 step_above "$run" 0 || { echo "no first step"; exit 1; }
  echo "launch $(python3 -c "print(f'{$(now) - $t0:.2f}')")" >>"$work/results"
  wait_until 300 step_above "$run" 150 || { echo "no step 150"; exit 1; }
  sleep "0.$((RANDOM % 9 + 1))"
  at_kill=$(field "$run" "s['global_step']")
  kill -9 "$(task_field "$run" ps1 pid)"
  t0=$(now)
  wait_until 300 bash -c "grep -q 'resuming at global step' $run/logs/worker0.log" ||
    { echo "no resume"; exit 1; }
  restored=$(grep -o 'resuming at global step [0-9]*' "$run/logs/worker0.log" | tail -n 1 | awk '{print $5}')
  wait_until 300 step_above "$run" "$restored" || { echo "no step after the restore"; exit 1; }
  echo "ps_resumed $(python3 -c "print(f'{$(now) - $t0:.2f}')")" >>"$work/results"
  echo "ps_lost $((at_kill - restored))" >>"$work/results"
  # a worker kill in the same job
  old=$(task_field "$run" worker1 pid)
  kill -9 "$old"
  t0=$(now)
  wait_until 120 bash -c "p=\$(python3 -c \"import json; s=json.load(open('$run/state.json')); t=[t for t in s['tasks'] if t['task']=='worker1'][0]; print(t['pid'] if t['pid'] != $old and t['state'] == 'running' and t['examples_per_sec'] > 0 else '')\" 2>/dev/null); [ -n \"\$p\" ]" ||
    { echo "worker1 did not come back"; exit 1; }
  echo "worker_back $(python3 -c "print(f'{$(now) - $t0:.2f}')")" >>"$work/results"
  stop_job
done
echo "recovery bench: 2 PS + 2 workers, SimpleCNN, checkpoint every 100 steps, $trials trials (medians)"
for k in launch ps_resumed ps_lost worker_back; do
  printf '  %-12s %8s   (all: %s)\n' "$k" "$(awk -v k=$k '$1 == k {print $2}' "$work/results" | median)" \
    "$(awk -v k=$k '$1 == k {printf "%s ", $2}' "$work/results")"
done
echo "  (launch: s to the first step; ps_resumed: s from the PS kill to training past the restored"
echo "   step, target <= 15 s + restore; ps_lost: steps, target <= 100; worker_back: s until the"
echo "   restarted worker reports steps again, target <= 10 s)"
