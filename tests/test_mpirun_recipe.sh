#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016  # "A && pass || fail" is safe; $OMPI_* expand in the ranks
# deploy/mpirun with Debian's OpenMPI: the hostfiles parse, and the README's local command line
# (its OpenMPI settings, hosts.local, 3 ranks, MPMD) starts its ranks here. When the build has
# the MPI transport (PST_BUILT_WITH_MPI=ON from CMake), the README's pstrain commands run for
# real (PS over MPI, MPMD, allreduce; MLP, test accuracy >= 0.80); without it those runs are
# reported as not run. Exits 77 (skipped) when mpirun is not installed.
set -euo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
dep=$src/deploy/mpirun
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
command -v mpirun >/dev/null || { echo "SKIP test_mpirun_recipe: mpirun is not installed (openmpi-bin)"; exit 77; }
dir=$(mktemp -d /tmp/pst-mpirun.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# Hostfiles: "host slots=N" lines and comments.
for h in "$dep/hosts" "$dep/hosts.local"; do
  bad=$(grep -vE '^\s*(#.*)?$' "$h" | grep -vE '^[A-Za-z0-9._-]+( slots=[1-9][0-9]*)?( max_slots=[1-9][0-9]*)?$' || true)
  [ -z "$bad" ] && pass "$(basename "$h") is a hostfile" || fail "$(basename "$h"): not hostfile lines: $bad"
done

# The README's local command, continuation lines joined.
cmd=$(awk '/The complete local command the test runs:/ {on = 1; next}
           on && /^    / {sub(/^ +/, ""); line = line $0 " "; next}
           on && line != "" {exit}
           END {print line}' "$dep/README.md" | sed 's/\\ / /g; s/  */ /g')
[[ "$cmd" == mpirun* ]] || fail "no local command in deploy/mpirun/README.md"
# Its mpirun part, with a program that reports each rank.
launcher=${cmd%% pstrain-worker *}
read -r -a mpi <<<"$launcher"
mpi=("${mpi[@]/#deploy\/mpirun\//$dep/}")
out=$("${mpi[@]}" bash -c 'echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"' 2>&1 | sort) || true
want=$'rank 0 of 3\nrank 1 of 3\nrank 2 of 3'
[ "$out" = "$want" ] && pass "${mpi[*]} starts 3 ranks" || fail "mpirun: $out"
# MPMD: one program for the PS rank, another for the workers.
mpmd=("${mpi[@]:0:${#mpi[@]}-2}") # without "-np 3"
out=$("${mpmd[@]}" -np 1 bash -c 'echo "ps $OMPI_COMM_WORLD_RANK"' : -np 2 bash -c 'echo "worker $OMPI_COMM_WORLD_RANK"' 2>&1 | sort) || true
[ "$out" = $'ps 0\nworker 1\nworker 2' ] && pass "MPMD: -np 1 ... : -np 2 ..." || fail "MPMD: $out"

# The pstrain commands, when the build has the MPI transport. Leaks inside the MPI library are
# the MPI suites' business (they carry its suppressions): no leak check in these runs.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
# PST_BUILT_WITH_MPI comes from CMake (PST_MPI); run by hand, the build is taken to have MPI.
with_mpi=${PST_BUILT_WITH_MPI:-ON}
accuracy_ok() { python3 -c "import sys; sys.exit(0 if float('$1') >= 0.80 else 1)" 2>/dev/null; }
if [ "$with_mpi" = ON ]; then
  read -r -a run <<<"${cmd//deploy\/mpirun\//$dep/}"
  run=("${run[@]/#pstrain-worker/$bin/worker/pstrain-worker}")
  if (cd "$dir" && timeout 300 "${run[@]}") >"$dir/ps.log" 2>&1; then
    acc=$(sed -n 's/.*test_accuracy=//p' "$dir/ps.log" | head -n 1)
    [ -n "$acc" ] && accuracy_ok "$acc" && pass "PS over MPI: test_accuracy=$acc" ||
      fail "PS over MPI: accuracy '$acc': $(tail -n 5 "$dir/ps.log")"
  else
    fail "PS over MPI failed: $(tail -n 5 "$dir/ps.log")"
  fi
  # MPMD: pstrain-ps for the PS rank, pstrain-worker for the others.
  if (cd "$dir" && timeout 300 "${mpmd[@]}" -np 1 "$bin/ps/pstrain-ps" --transport mpi --ps 1 \
    : -np 2 "$bin/worker/pstrain-worker" --transport mpi --ps 1 --model mlp --steps 200 \
    --threads 1) >"$dir/mpmd.log" 2>&1 && grep -q "test_accuracy=" "$dir/mpmd.log"; then
    pass "MPMD pstrain-ps : pstrain-worker over MPI"
  else
    fail "MPMD over MPI: $(tail -n 5 "$dir/mpmd.log")"
  fi
else
  echo "not run: this build has no MPI transport (configured with -DPST_MPI=OFF)"
fi
if [ "$with_mpi" = ON ]; then
  if (cd "$dir" && timeout 300 "${mpmd[@]}" -np 2 "$bin/worker/pstrain-worker" --mode allreduce \
    --model mlp --steps 600 --threads 1) >"$dir/ar.log" 2>&1; then
    acc=$(sed -n 's/.*test_accuracy=//p' "$dir/ar.log" | head -n 1)
    [ -n "$acc" ] && accuracy_ok "$acc" && pass "allreduce: test_accuracy=$acc" ||
      fail "allreduce: accuracy '$acc': $(tail -n 5 "$dir/ar.log")"
  else
    fail "allreduce failed: $(tail -n 5 "$dir/ar.log")"
  fi
else
  echo "not run: this build has no allreduce mode (configured with -DPST_MPI=OFF)"
fi

if [ "$failures" -gt 0 ]; then
  echo "test_mpirun_recipe: $failures failures"
  exit 1
fi
echo "test_mpirun_recipe: all checks passed"
