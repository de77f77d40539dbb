#!/usr/bin/env bash
# MPI benchmarks on this machine (README "Benchmarks"), each against a reference measured in the
# same run:
#   1. bench_mpi under mpirun -np 2: push + pull of 100 MB (in 25 variables, then in 100) over
#      the MPI transport vs raw MPI_Send/MPI_Recv, and the SimpleCNN's gradients through the fused allreduce vs one raw
#      MPI_Allreduce of the same bytes (medians of alternated pairs);
#   2. bench_transport: the gRPC transport's figure for the same 100 MB (vs raw TCP);
#   3. SimpleCNN in allreduce mode, 2 ranks vs 1 rank (1 thread each, batch 100 per rank):
#      examples/s of all ranks together, runs alternated, medians and the median ratio.
# Usage: bench/run_mpi_bench.sh [steps] [runs]   (default 300 steps, 3 runs of each)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${PST_BINARY_DIR:-$src/build}
steps=${1:-300}
runs=${2:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
# Ranks may outnumber the cores: blocking MPI calls yield instead of spinning.
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
dir=$(mktemp -d /tmp/pst-mpi-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "== bench_mpi (2 ranks)"
mpirun --bind-to none -np 2 "$bin/bench/bench_mpi"
echo "== bench_mpi, the same 100 MB in 100 variables of 1 MB (per-message cost)"
mpirun --bind-to none -np 2 "$bin/bench/bench_mpi" 100 100 transport | tail -n +2
echo "== bench_transport (gRPC, the same 100 MB)"
"$bin/bench/bench_transport" | tail -n 3
echo "== SimpleCNN, allreduce, 2 ranks vs 1 rank ($steps steps, batch 100 per rank, 1 thread each)"
rate() { # total examples/s of all ranks in a log
  sed -n 's/.*trained [0-9]* steps in .* s (\([0-9.]*\) examples\/s).*/\1/p' "$1" |
    awk '{s += $1} END {print s + 0}'
}
one=() two=() ratio=()
for ((r = 0; r < runs; r++)); do
  for n in 1 2; do
    mpirun --bind-to none -np $n "$bin/worker/pstrain-worker" --mode allreduce --model simple_cnn \
      --steps "$steps" --batch 100 --threads 1 --validation 0 >"$dir/cnn$n.log" 2>&1
  done
  a=$(rate "$dir/cnn1.log") b=$(rate "$dir/cnn2.log")
  one+=("$a") two+=("$b") ratio+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')")
  echo "  run $((r + 1)): 1 rank $a examples/s, 2 ranks $b examples/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "  median: 1 rank $(median "${one[@]}"), 2 ranks $(median "${two[@]}") examples/s;" \
  "2 ranks / 1 rank: median $(median "${ratio[@]}") (target >= 1.8; PS mode's figure: 1.88)"
