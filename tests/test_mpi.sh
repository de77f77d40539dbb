#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && pass || fail" is safe here
# pstrain over MPI with real mpirun jobs on this machine (README "MPI"):
#   - PS mode over the MPI transport: 2 PS + 2 workers train the MLP to the single-process bar;
#   - sync equivalence over MPI: 2 workers at batch B equal one process at batch 2B (SGD, 1e-5);
#   - allreduce mode: 2 ranks at batch B equal one process at batch 2B after 20 SGD steps
#     (1e-5), 2 ranks train the MLP to the bar, and their checkpoint restores in PS mode;
#   - a killed rank makes the others exit non-zero with an error naming it, never a hang.
# Exits 77 (skipped) without mpirun or when the build has no MPI.
set -uo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
worker=$bin/worker/pstrain-worker
pstrain=$bin/launcher/pstrain
command -v mpirun >/dev/null || { echo "SKIP test_mpi: mpirun is not installed (openmpi-bin)"; exit 77; }
"$worker" --help 2>&1 | grep -q -- '--transport' || { echo "SKIP test_mpi: built without MPI"; exit 77; }
dir=$(mktemp -d /tmp/pst-mpi.XXXXXX)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
# OpenMPI's settings for tests (README "MPI"): root allowed, more ranks than cores, the
# container-safe shared-memory copy. MPI's own allocations are not pstrain's: no leak checks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpi() { timeout "${T:-240}" mpirun --bind-to none -x OPENBLAS_NUM_THREADS=1 "$@"; }
accuracy() { sed -n 's/.*test_accuracy=//p' "$1" | head -n 1; }
at_least() { python3 -c "import sys; sys.exit(0 if float('${1:-0}') >= $2 else 1)" 2>/dev/null; }
equal_ckpts() { "$pstrain" ckpt diff "$1" "$2" --tolerance "$3"; }
mlp_bar=0.86
exact=(--model mlp --steps 20 --optimizer sgd --lr 0.1 --keep-prob 1 --no-shuffle --threads 1 --quiet)

# One process at batch 200: the reference of both equivalence tests.
"$worker" "${exact[@]}" --batch 200 --checkpoint-dir "$dir/single" >"$dir/single.log" 2>&1 ||
  fail "single process: $(tail -n 3 "$dir/single.log")"

# PS mode over MPI: ranks 0, 1 the PS, ranks 2, 3 the workers (asynchronous, as the gRPC test).
if mpi -np 4 "$worker" --transport mpi --ps 2 --model mlp --steps 4000 --threads 1 --quiet \
  >"$dir/ps.log" 2>&1; then
  acc=$(accuracy "$dir/ps.log")
  at_least "$acc" $mlp_bar && pass "PS over MPI: 2 PS + 2 workers, MLP test_accuracy=$acc" ||
    fail "PS over MPI: accuracy '$acc' below $mlp_bar"
else
  fail "PS over MPI: $(tail -n 5 "$dir/ps.log")"
fi

# equal NAME REF TOL MPIRUN-ARGS...: the job's checkpoint at step 20 equals REF's within TOL.
equal() {
  local name=$1 ref=$2 tol=$3
  shift 3
  if mpi "$@" --checkpoint-dir "$dir/$name" >"$dir/$name.log" 2>&1; then
    equal_ckpts "$ref/model.ckpt-20" "$dir/$name/model.ckpt-20" "$tol" >"$dir/$name.diff" &&
      pass "$name: $(cat "$dir/$name.diff")" || fail "$name differs: $(cat "$dir/$name.diff")"
  else
    fail "$name: $(tail -n 5 "$dir/$name.log")"
  fi
}
# Sync over MPI, 2 workers at batch 100, equals one process at batch 200.
equal sync "$dir/single" 1e-5 -np 4 "$worker" --transport mpi --ps 2 --mode sync "${exact[@]}" \
  --batch 100
# Allreduce: 2 ranks at batch 100 equal one process at batch 200 after 20 SGD steps ...
equal ar20 "$dir/single" 1e-5 -np 2 "$worker" --mode allreduce "${exact[@]}" --batch 100
# ... and with fusion off (one collective per gradient) and no cycle wait, the same values.
equal ar20_unfused "$dir/ar20" 0 -np 2 "$worker" --mode allreduce "${exact[@]}" --batch 100 \
  --fusion-threshold-bytes 0 --cycle-time-ms 0

# Allreduce: 2 ranks train the MLP to the bar; rank 0 writes the checkpoint.
if mpi -np 2 "$worker" --mode allreduce --model mlp --steps 2000 --threads 1 --quiet \
  --checkpoint-dir "$dir/ar" >"$dir/ar.log" 2>&1; then
  ar_acc=$(accuracy "$dir/ar.log")
  at_least "$ar_acc" $mlp_bar && pass "allreduce, 2 ranks: MLP test_accuracy=$ar_acc" ||
    fail "allreduce: accuracy '$ar_acc' below $mlp_bar"
  [ "$(grep -c 'test_accuracy=' "$dir/ar.log")" = 1 ] && pass "only rank 0 evaluates" ||
    fail "test_accuracy printed $(grep -c 'test_accuracy=' "$dir/ar.log") times"
else
  ar_acc=
  fail "allreduce: $(tail -n 5 "$dir/ar.log")"
fi
# restores NAME DIR ACC MPIRUN-ARGS...: the job restores DIR's newest checkpoint, has nothing
# left to train and gets test accuracy ACC from the restored weights.
restores() {
  local name=$1 from=$2 acc=$3
  shift 3
  if [ -n "$acc" ] && mpi "$@" --checkpoint-dir "$from" >"$dir/$name.log" 2>&1; then
    grep -q "restored .*model.ckpt-" "$dir/$name.log" && [ "$(accuracy "$dir/$name.log")" = "$acc" ] &&
      pass "$name: restored, test_accuracy=$acc again" ||
      fail "$name: $(grep -E 'restored|test_accuracy' "$dir/$name.log")"
  else
    fail "$name: $(tail -n 5 "$dir/$name.log" 2>/dev/null)"
  fi
}
# The allreduce checkpoint in PS mode (1 PS, 2 workers over MPI) ...
restores allreduce_ckpt_in_ps_mode "$dir/ar" "$ar_acc" -np 3 "$worker" --transport mpi --ps 1 \
  --model mlp --steps 2000 --threads 1 --quiet
# ... and the sync PS job's 2-shard checkpoint in allreduce mode.
restores ps_ckpt_in_allreduce_mode "$dir/sync" "$(accuracy "$dir/sync.log")" -np 2 "$worker" \
  --mode allreduce "${exact[@]}" --batch 100

if [ "$failures" -gt 0 ]; then
  echo "test_mpi: $failures failures"
  exit 1
fi
echo "test_mpi: all checks passed"
