#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && pass || fail" is safe here
# pstrain over MPI with real mpirun jobs on this machine (README "MPI"):
#   - PS mode over the MPI transport: 2 PS + 2 workers train the MLP to the single-process bar;
#   - sync equivalence over MPI: 2 workers at batch B equal one process at batch 2B (SGD, 1e-5);
#   - allreduce mode: 2 ranks at batch B equal one process at batch 2B after 20 SGD steps
#     (1e-5), 2 ranks train the MLP to the bar, and their checkpoint restores in PS mode;
#   - hybrid mode: the embedding on the PS, dense gradients allreduced; loss, placement, checkpoint;
#   - a killed rank makes the others exit non-zero with an error naming it, never a hang;
#   - pstrain launch --backend mpirun: restarts, and pstrain status/stop know its runs.
# Exits 77 (skipped) without mpirun or when the build has no MPI.
set -uo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
worker=$bin/worker/pstrain-worker
pstrain=$bin/launcher/pstrain
command -v mpirun >/dev/null || { echo "SKIP test_mpi: mpirun is not installed (openmpi-bin)"; exit 77; }
# PST_BUILT_WITH_MPI comes from CMake (PST_MPI); run by hand, the build is taken to have MPI.
[ "${PST_BUILT_WITH_MPI:-ON}" = ON ] || { echo "SKIP test_mpi: built without MPI (-DPST_MPI=OFF)"; exit 77; }
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
mlp_bar=0.86 ps_steps=4000 ar_steps=2000 hy_bar=0.70 hy_steps=600
# Under AddressSanitizer (build-asan) the training runs are ~5x slower: shorter runs, the
# deployment recipe's bar (0.80), longer guards. Values, restores and failures are checked alike.
if ldd "$worker" 2>/dev/null | grep -q libasan; then
  mlp_bar=0.80 ps_steps=1000 ar_steps=600 T=600 hy_bar=0.60 hy_steps=300
fi
exact=(--model mlp --steps 20 --optimizer sgd --lr 0.1 --keep-prob 1 --no-shuffle --threads 1 --quiet)

# One process at batch 200: the reference of both equivalence tests.
"$worker" "${exact[@]}" --batch 200 --checkpoint-dir "$dir/single" >"$dir/single.log" 2>&1 ||
  fail "single process: $(tail -n 3 "$dir/single.log")"

# PS mode over MPI: ranks 0, 1 the PS, ranks 2, 3 the workers (asynchronous, as the gRPC test).
if mpi -np 4 "$worker" --transport mpi --ps 2 --model mlp --steps $ps_steps --lr-decay cosine --threads 1 --quiet \
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
if mpi -np 2 "$worker" --mode allreduce --model mlp --steps $ar_steps --threads 1 --quiet \
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
  --model mlp --steps $ar_steps --threads 1 --quiet
# ... and the sync PS job's 2-shard checkpoint in allreduce mode.
restores ps_ckpt_in_allreduce_mode "$dir/sync" "$(accuracy "$dir/sync.log")" -np 2 "$worker" \
  --mode allreduce "${exact[@]}" --batch 100

# kill_pstrain_rank PATTERN RANK: SIGKILL to the pstrain-worker of MPI rank RANK among the
# processes whose command line matches PATTERN.
kill_pstrain_rank() {
  local p r
  for p in $(pgrep -f -- "$1"); do
    r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [ "$r" = "$2" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pstrain-worker ] && kill -9 "$p"
  done
}
# A killed rank. kill_rank NAME RANK READY MPIRUN-ARGS...: starts the job (its worker flags get
# --checkpoint-dir $dir/NAME, which marks its processes), waits for READY in its output, kills
# RANK's process with SIGKILL and waits (at most 90 s) for mpirun to end; $kill_rc is its status.
kill_rank() {
  local name=$1 rank=$2 ready=$3 i
  shift 3
  kill_rc=
  mpi "$@" --checkpoint-dir "$dir/$name" >"$dir/$name.log" 2>&1 &
  local job=$!
  for ((i = 0; i < 600; i++)); do
    grep -q "$ready" "$dir/$name.log" && break
    sleep 0.1
  done
  kill_pstrain_rank "--checkpoint-dir $dir/$name\$" "$rank"
  for ((i = 0; i < 900; i++)); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$job" 2>/dev/null; then
    pkill -9 -f -- "--checkpoint-dir $dir/$name\$"
    wait "$job"
    kill_rc=hang
  else
    wait "$job"
    kill_rc=$?
  fi
}
long=(--model mlp --steps 100000 --threads 1 --quiet)
# mpirun ends the job when a rank dies; the other ranks say which one before they go.
kill_rank kill_allreduce 1 "allreduce over 2 ranks" -np 2 "$worker" --mode allreduce "${long[@]}"
[ "$kill_rc" != hang ] && [ "$kill_rc" != 0 ] &&
  grep -q "rank 0 of 2: mpirun is ending the job: rank 1 (pid [0-9]* on .*) exited" "$dir/kill_allreduce.log" &&
  pass "allreduce, rank 1 killed: mpirun exits $kill_rc, rank 0 names rank 1" ||
  fail "allreduce, rank 1 killed (mpirun status $kill_rc): $(grep -v '^-\|^$' "$dir/kill_allreduce.log" | tail -n 8)"
kill_rank kill_ps_mode 3 "async training" -np 4 "$worker" --transport mpi --ps 2 "${long[@]}"
[ "$kill_rc" != hang ] && [ "$kill_rc" != 0 ] &&
  grep -q "mpirun is ending the job: rank 3 (pid [0-9]* on .*) exited" "$dir/kill_ps_mode.log" &&
  pass "PS mode, worker rank 3 killed: mpirun exits $kill_rc, the other ranks name rank 3" ||
  fail "PS mode, rank 3 killed (mpirun status $kill_rc): $(grep -v '^-\|^$' "$dir/kill_ps_mode.log" | tail -n 8)"
# With --enable-recovery mpirun lets the others run on: rank 0's collective times out
# (--recv-timeout-ms) and it exits 1 naming rank 1. (mpirun itself then exits 0: OpenMPI 4.1
# ignores the ranks' statuses under recovery; each rank reports its own.)
kill_rank kill_recovery 1 "allreduce over 2 ranks" --enable-recovery -np 2 sh -c \
  "\"\$0\" \"\$@\"; echo \"rank \$OMPI_COMM_WORLD_RANK exit status \$?\"" \
  "$worker" --mode allreduce "${long[@]}" --recv-timeout-ms 4000
[ "$kill_rc" != hang ] && grep -q "rank 0 exit status 1" "$dir/kill_recovery.log" &&
  grep -q "rank 0: .*: rank 1 (pid [0-9]* on .*) exited; the other ranks did not join within 4000 ms" "$dir/kill_recovery.log" &&
  pass "allreduce under --enable-recovery: rank 0 exits 1 naming rank 1 after the timeout" ||
  fail "allreduce under --enable-recovery (mpirun status $kill_rc): $(grep -v '^-\|^$' "$dir/kill_recovery.log" | tail -n 8)"

# Hybrid mode: ranks 0, 1 the PS, 2, 3 the workers; bag_of_ids' partitioned embedding [392, 16]
# stays on the PS (a step gathers its batch's rows there and applies their sparse gradient),
# the dense layers are replicas on the workers with allreduced gradients. The loss falls, both
# workers end with the same model, the status reports show each embedding part on its PS and
# the dense variables on the workers, and the TF-format checkpoint (the embedding sliced over
# the 2 shards) restores in a single process with the same accuracy.
if mpi -np 4 "$worker" --transport mpi --ps 2 --mode hybrid --model bag_of_ids --optimizer sgd \
  --lr 0.1 --steps $hy_steps --threads 1 --status --checkpoint-dir "$dir/hybrid" \
  >"$dir/hybrid.log" 2>&1; then
  tr '\r' '\n' <"$dir/hybrid.log" >"$dir/hybrid.txt"
  accs=$(sed -n 's/.*test_accuracy=//p' "$dir/hybrid.txt" | sort -u)
  first=$(sed -n 's/.*task:0: global step [0-9]*, local step 1, loss \([0-9.]*\).*/\1/p' "$dir/hybrid.txt" | head -n 1)
  last=$(sed -n 's/.*task:0: trained .* final loss \([0-9.]*\).*/\1/p' "$dir/hybrid.txt")
  # "PS-or-worker variable" pairs from the status reports
  where=$(awk '/^\/job:/ {who = ($1 ~ /ps/) ? "ps" substr($1, length($1)) : "worker"}
               /^  var / {print who, $2}' "$dir/hybrid.txt" | sort -u)
  [ "$(wc -l <<<"$accs")" = 1 ] && at_least "$accs" $hy_bar && [ -n "$first" ] && [ -n "$last" ] &&
    python3 -c "import sys; sys.exit(0 if $last < 0.6 * $first else 1)" &&
    pass "hybrid: 2 PS + 2 workers, bag_of_ids loss $first -> $last, test_accuracy=$accs on both" ||
    fail "hybrid: accuracies '$accs' (bar $hy_bar), loss '$first' -> '$last'"
  grep -q "^ps0 bag_of_ids/embedding/part_0$" <<<"$where" &&
    grep -q "^ps1 bag_of_ids/embedding/part_1$" <<<"$where" &&
    grep -q "^worker bag_of_ids/fc1/weights$" <<<"$where" &&
    ! grep -q "^worker bag_of_ids/embedding" <<<"$where" &&
    grep -q "var bag_of_ids/embedding/part_0 .* updates $((hy_steps + 1)) *slice of bag_of_ids/embedding" "$dir/hybrid.txt" &&
    pass "hybrid: the embedding's parts live on ps0 and ps1 (every step updated them), the dense layers on the workers" ||
    fail "hybrid: where the variables live: $(tr '\n' ' ' <<<"$where")"
  prefix=$dir/hybrid/model.ckpt-$hy_steps
  "$worker" --model bag_of_ids --optimizer sgd --steps $hy_steps --threads 1 --quiet \
    --checkpoint-dir "$dir/hybrid" >"$dir/hybrid_restore.log" 2>&1
  "$pstrain" ckpt show "$prefix" | grep -q "bag_of_ids/embedding  *float  *\[392,16\] .*(sliced)" &&
    [ "$(accuracy "$dir/hybrid_restore.log")" = "$accs" ] &&
    pass "hybrid: its checkpoint (embedding sliced) restores in a single process, test_accuracy=$accs" ||
    fail "hybrid checkpoint: $("$pstrain" ckpt show "$prefix" 2>&1 | head -n 3) $(tail -n 2 "$dir/hybrid_restore.log")"
else
  fail "hybrid: $(tail -n 5 "$dir/hybrid.log")"
fi

# pstrain launch with the mpirun backend: an allreduce job from its job file, and a PS job with
# --backend mpirun; a rank killed after the first checkpoint makes the launcher run mpirun
# again, and the job resumes from the newest checkpoint.
cat >"$dir/ar_job.json" <<EOF
{"cluster": {"worker": 2}, "backend": "mpirun", "mode": "allreduce", "model": "mlp",
 "steps": 800, "save_every_steps": 100, "threads": 1, "quiet": true,
 "restarts": {"max": 1, "backoff_ms": 100}}
EOF
"$pstrain" launch "$dir/ar_job.json" --run-dir "$dir/run_ar" >"$dir/launch_ar.out" 2>&1 &
launch=$!
for ((i = 0; i < 1200; i++)); do
  [ -e "$dir/run_ar/checkpoints/checkpoint" ] && break
  sleep 0.1
done
kill_pstrain_rank "--job $dir/run_ar/job.json" 1
if timeout 300 tail --pid=$launch -f /dev/null; wait $launch; then
  grep -q "running it again from the newest checkpoint (restart 1 of 1)" "$dir/launch_ar.out" &&
    grep -q "restored .*model.ckpt-[1-9]" "$dir/run_ar/logs/mpirun.log" &&
    grep -q "the job finished, test_accuracy=" "$dir/launch_ar.out" &&
    "$pstrain" ckpt ls "$dir/run_ar/checkpoints" | grep -q "step 800 " &&
    pass "launch --backend mpirun (allreduce): rank 1 killed, mpirun run again, resumed, finished" ||
    fail "launch, allreduce, restart: $(cat "$dir/launch_ar.out")"
else
  fail "launch, allreduce: $(cat "$dir/launch_ar.out")"
fi
printf '{"cluster": {"ps": 1, "worker": 2}, "model": "mlp", "steps": 200, "threads": 1, "quiet": true}\n' \
  >"$dir/ps_job.json"
if "$pstrain" launch "$dir/ps_job.json" --backend mpirun --run-dir "$dir/run_ps" \
  >"$dir/launch_ps.out" 2>&1 && grep -q -- "-np 3 .*--transport mpi --ps 1" "$dir/launch_ps.out" &&
  grep -q "the job finished, test_accuracy=" "$dir/launch_ps.out"; then
  pass "launch --backend mpirun (1 PS + 2 workers over MPI)"
else
  fail "launch --backend mpirun, PS mode: $(cat "$dir/launch_ps.out")"
fi

# pstrain status and stop know mpirun runs: state.json says "running" with one entry per rank
# (address mpi:R, the pid of the rank's pstrain-worker), the global step moves on, and pstrain
# stop ends mpirun and every rank ("stopped").
cat >"$dir/st_job.json" <<EOF
{"cluster": {"worker": 2}, "backend": "mpirun", "mode": "allreduce", "model": "mlp",
 "steps": 1000000, "save_every_steps": 50, "threads": 1}
EOF
"$pstrain" launch "$dir/st_job.json" --run-dir "$dir/run_st" >"$dir/launch_st.out" 2>&1 &
launch=$!
st_ok=
for ((i = 0; i < 600; i++)); do
  sleep 0.2
  "$pstrain" status "$dir/run_st" --json >"$dir/st.json" 2>/dev/null || continue
  python3 - "$dir/st.json" <<'PY' && st_ok=1 && break
import json, sys
s = json.load(open(sys.argv[1]))
t = {e["task"]: e for e in s["tasks"]}
ok = s["status"] == "running" and s["backend"] == "mpirun" and s["global_step"] > 0
ok = ok and sorted(t) == ["worker0", "worker1"] and t["worker1"]["address"] == "mpi:1"
for e in t.values():
    try:
        ok = ok and open("/proc/%d/comm" % e["pid"]).read().strip() == "pstrain-worker"
    except OSError:
        ok = False
sys.exit(0 if ok else 1)
PY
done
"$pstrain" status "$dir/run_st" >"$dir/st.txt" 2>&1
if [ -n "$st_ok" ] && grep -q "^run .*: running" "$dir/st.txt" &&
  grep -q "^worker1 *mpi:1 *running" "$dir/st.txt"; then
  pass "pstrain status of an mpirun run: running, 2 ranks with their pids, the global step"
else
  fail "pstrain status of an mpirun run: $(cat "$dir/st.txt" "$dir/launch_st.out" 2>&1 | tail -n 12)"
fi
if "$pstrain" stop "$dir/run_st" >"$dir/stop_st.out" 2>&1 &&
  timeout 60 tail --pid=$launch -f /dev/null &&
  "$pstrain" status "$dir/run_st" | grep -q "^run .*: stopped" &&
  ! pgrep -f -- "--job $dir/run_st/job.json" >/dev/null; then
  pass "pstrain stop of an mpirun run: mpirun and its ranks ended, state stopped"
else
  fail "pstrain stop of an mpirun run: $(cat "$dir/stop_st.out"; "$pstrain" status "$dir/run_st" 2>&1 | head -n 3)"
  pkill -9 -f -- "--job $dir/run_st/job.json"
fi
wait $launch 2>/dev/null

if [ "$failures" -gt 0 ]; then
  echo "test_mpi: $failures failures"
  exit 1
fi
echo "test_mpi: all checks passed"
