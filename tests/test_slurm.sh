#!/usr/bin/env bash
# The Slurm recipe on a real single-node Slurm: starts a private munged, slurmctld and slurmd
# (node "localhost", 2 CPUs, overcommitted), submits deploy/slurm/pstrain.sbatch for 1 PS + 2
# workers training the MLP (6000 global steps, a checkpoint every 500), kills the PS once
# after the first checkpoint so the script restarts the step, and checks that the chief
# restored the checkpoint and reached test accuracy >= 0.86. Stops the daemons it started.
#
# Exits 77 (ctest: skipped) with a message when Slurm or munge is not installed (scripts/setup.sh
# installs them), when not root (slurmd launches tasks as root here), or when the daemons cannot
# start on this machine. Set PST_KEEP_TEST_DIR=1 to keep the logs.
set -euo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
skip() {
  echo "SKIP test_slurm: $*"
  exit 77
}
fail() {
  echo "FAIL test_slurm: $*"
  exit 1
}
say() { echo "test_slurm: [$(date +%T)] $*"; }

for c in munged mungekey slurmctld slurmd sbatch srun scontrol sinfo python3; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] ||
    skip "'$c' is not installed (scripts/setup.sh installs slurmctld slurmd slurm-client munge)"
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to start tasks; run as root"
for b in "$bin/ps/pstrain-ps" "$bin/worker/pstrain-worker" "$bin/launcher/pstrain"; do
  [ -x "$b" ] || fail "$b is not built"
done

# A private directory (munged wants every directory above its socket searchable).
dir=$(mktemp -d /tmp/pst-slurm.XXXXXX)
chmod 755 "$dir"
jobid=""
sbatch_pid=""
watchdog=""
cleanup() {
  set +e
  [ -n "$jobid" ] && timeout 10 scancel "$jobid" 2>/dev/null && sleep 2
  [ -n "$sbatch_pid" ] && kill "$sbatch_pid" 2>/dev/null
  if [ -n "$watchdog" ]; then
    pkill -P "$watchdog" 2>/dev/null # its sleep
    kill "$watchdog" 2>/dev/null
  fi
  for d in slurmd slurmctld munged; do
    pid=$(cat "$dir/$d.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "${PST_KEEP_TEST_DIR:-0}" = 1 ]; then echo "test_slurm: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
# A watchdog below ctest's timeout (900 s): whatever hangs, the test still reports where it
# was and stops what it started.
limit=${PST_SLURM_TEST_LIMIT:-780}
(sleep "$limit" && kill -USR1 $$) 2>/dev/null &
watchdog=$!
trap 'echo "FAIL test_slurm: no result after $limit s"; show_logs; exit 1' USR1
show_logs() {
  [ -z "$jobid" ] || { echo "--- job $jobid"; timeout 10 scontrol show job "$jobid" 2>&1 | head -n 12; }
  for f in "$dir"/*.log "$dir/job.out"; do
    [ -f "$f" ] && { echo "--- $f"; grep -v "registered partition" "$f" | tail -n 60; }
  done
}

# Free ports: two for the daemons, three in a row for the job (1 PS + 2 workers on one node).
read -r ctld_port slurmd_port job_port < <(python3 - <<'PY'
import random, socket
def free(n):
    while True:
        base = random.randrange(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(); s.bind(("0.0.0.0", p)); socks.append(s)
            return base
        except OSError:
            pass
        finally:
            for s in socks: s.close()
print(free(1), free(1), free(3))
PY
)

# munge with its own key and socket.
mungekey --create --keyfile="$dir/munge.key" >/dev/null 2>&1 || skip "mungekey cannot make a key"
if ! munged --socket="$dir/munge.socket" --key-file="$dir/munge.key" --log-file="$dir/munged.log" \
  --pid-file="$dir/munged.pid" --seed-file="$dir/munged.seed" 2>>"$dir/munged.log"; then
  skip "munged did not start: $(tail -n 1 "$dir/munged.log")"
fi

# Slurm: the controller on this host's name (slurmctld insists), the node called "localhost" so
# the job's addresses are loopback (cleartext is allowed there; the recipe's TLS path is for
# real networks).
host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool"
cat >"$dir/slurm.conf" <<CONF
ClusterName=psttest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=30 State=UP
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -c >>"$dir/slurmctld.log" 2>&1 || { show_logs; skip "slurmctld did not start"; }
slurmd -N localhost >>"$dir/slurmd.log" 2>&1 || { show_logs; skip "slurmd did not start"; }
state=""
for _ in $(seq 100); do
  state=$(timeout 10 sinfo -h -n localhost -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.3
done
[ "$state" = idle ] || { show_logs; skip "the node did not become idle (state '$state')"; }
say "Slurm up in $dir (slurmctld :$ctld_port, slurmd :$slurmd_port)"

# Under AddressSanitizer (build-asan), the tasks resolve "localhost" through c-ares, whose lost
# bytes are not pstrain's (tests/lsan/cares.supp); srun passes the environment on.
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$src/tests/lsan/cares.supp"

# The job: the token on "shared storage", cleartext on loopback, MLP with checkpoints.
mkdir -p "$dir/shared"
"$bin/launcher/pstrain" token new "$dir/shared/token"
ckpt=$dir/shared/run/checkpoints
(cd "$dir" && PST_JOB_TOKEN_FILE=$dir/shared/token PST_BUILD_DIR=$bin PST_TLS=off \
  PST_PORT_BASE=$job_port PST_RUN_DIR=$dir/shared/run PST_SRUN_FLAGS=--overcommit \
  PST_WORKER_FLAGS="--model mlp --steps 6000 --lr-decay cosine --save-every-steps 500 --quiet" \
  sbatch --parsable --wait -N1 -n3 -c1 --overcommit -t 15 -o "$dir/job.out" \
  "$src/deploy/slurm/pstrain.sbatch" >"$dir/sbatch.txt" 2>&1) &
sbatch_pid=$!
for _ in $(seq 100); do
  jobid=$( (head -n 1 "$dir/sbatch.txt" 2>/dev/null || true) | tr -cd 0-9)
  [ -n "$jobid" ] && break
  sleep 0.1
done
[ -n "$jobid" ] || { cat "$dir/sbatch.txt"; fail "sbatch printed no job id"; }
say "job $jobid submitted; waiting for its first checkpoint"

# Once the first checkpoint is on disk, kill the PS (global rank 0 of step 0).
deadline=$((SECONDS + 240))
until grep -q "model.ckpt-" "$ckpt/checkpoint" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { show_logs; fail "no checkpoint after 240 s"; }
  kill -0 "$sbatch_pid" 2>/dev/null || { show_logs; fail "the job ended before its first checkpoint"; }
  sleep 0.2
done
ps_pid=$( (timeout 20 scontrol listpids "$jobid" 2>/dev/null || true) | awk '$3 == "0" && $5 == "0" {print $1}' | head -n 1)
if [ -z "$ps_pid" ] || [ "$(cat "/proc/$ps_pid/comm" 2>/dev/null)" != pstrain-ps ]; then
  show_logs
  fail "cannot find the PS of job $jobid (scontrol listpids: $(timeout 20 scontrol listpids "$jobid" 2>&1))"
fi
say "killing the PS (pid $ps_pid) after $(head -n 1 "$ckpt/checkpoint")"
kill -9 "$ps_pid"

# The script restarts the step; the chief restores the checkpoint and the job finishes.
deadline=$((SECONDS + 420))
while kill -0 "$sbatch_pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { show_logs; fail "the job did not finish within 420 s"; }
  sleep 0.5
done
rc=0
wait "$sbatch_pid" || rc=$?
jobid_done=$jobid
jobid=""
[ "$rc" -eq 0 ] || { show_logs; fail "sbatch --wait exited $rc (job $jobid_done)"; }
out=$dir/job.out
grep -q "restart 1 of 3 from the newest checkpoint" "$out" || { show_logs; fail "no restart in $out"; }
grep -qE "^ *1: restored .*model\.ckpt-[0-9]+ onto 1 PS" "$out" ||
  { show_logs; fail "the chief (rank 1) restored no checkpoint after the restart"; }
acc=$( (grep -E "^ *1: test_accuracy=" "$out" || true) | tail -n 1 | sed 's/.*test_accuracy=//')
[ -n "$acc" ] || { show_logs; fail "the chief printed no test accuracy"; }
python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.86 else 1)" ||
  { show_logs; fail "test accuracy $acc below 0.86"; }
grep -qE "^ *0: pstrain-ps: every worker finished" "$out" || { show_logs; fail "the PS did not finish"; }
echo "test_slurm: 1 PS + 2 workers through srun (--cluster-from slurm), PS killed and the step" \
  "restarted from $(grep -E '^ *1: restored' "$out" | sed 's/.*restored //'), test_accuracy=$acc"
