#!/usr/bin/env bash
# pstrain over MPI across separate "hosts" with a hostfile (README "MPI"): two network
# namespaces (h0, h1), each with its own address on a private bridge, its own hostname (a UTS
# namespace) and an sshd; mpirun runs in the root namespace and starts its daemons on the hosts
# over ssh, as on a real cluster. Checks:
#   spread   4 ranks over the hostfile's 2 hosts (2 slots each): every rank reports the address
#            of the namespace it runs in, 2 on each host
#   ps       PS mode over the MPI transport (2 PS + 2 workers, ranks 0-1 on h0, 2-3 on h1: every
#            push and pull crosses the hosts over MPI's TCP transport) trains the MLP
#   allreduce 2 ranks, one per host, average their gradients across the hosts and train the MLP;
#            rank 0 writes the TF-format checkpoint
#   launch   pstrain launch --backend mpirun runs a job file with the hostfile and these
#            settings ("mpirun": {"hostfile", "args"}); the run ends done with a checkpoint
#   killed   a worker rank killed on h1 makes the job end with an error naming it, never a hang
#
# Exits 77 (ctest: skipped) with a message when not root, when mpirun/ip/sshd are missing, or
# when network namespaces, bridges or veth pairs cannot be made here. Everything the test
# creates (namespaces, bridge, veth pairs, sshds and what they started) is removed on exit.
# PST_KEEP_TEST_DIR=1 keeps the logs.
set -uo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
worker=$bin/worker/pstrain-worker
skip() {
  echo "SKIP test_mpi_hosts: $*"
  exit 77
}
say() { echo "test_mpi_hosts: [$(date +%T)] $*"; }
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v mpirun >/dev/null || skip "mpirun is not installed (openmpi-bin)"
for c in ip ssh ssh-keygen unshare; do
  command -v "$c" >/dev/null || skip "'$c' is not installed (iproute2, openssh-client, util-linux)"
done
[ -x /usr/sbin/sshd ] || skip "sshd is not installed (apt-get install openssh-server)"
[ "${PST_BUILT_WITH_MPI:-ON}" = ON ] || skip "built without MPI (-DPST_MPI=OFF)"

dir=$(mktemp -d /tmp/pst-mpihosts.XXXXXX)
chmod 755 "$dir"
# shellcheck source=ssh/netns_hosts.sh
. "$src/tests/ssh/netns_hosts.sh"
nh_id=$(($$ % 100000)) nh_pfx=pstm nh_hosts="h0 h1"
cleanup() {
  nh_destroy
  if [ "${PST_KEEP_TEST_DIR:-0}" = 1 ]; then echo "test_mpi_hosts: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
nh_pick_net || skip "no free private /24 found"
declare -A addr=([h0]=$net.11 [h1]=$net.12)
err=$(nh_create "$dir/ip.err") || skip "$err"

# One sshd per host, in the host's network namespace and a UTS namespace of its own (its own
# hostname, so MPI sees two nodes). Everything the sshd starts inherits both.
ssh_dir=$dir/ssh
nh_ssh_keys "$ssh_dir"
ssh_cmd="ssh -i $ssh_dir/id -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5"
for h in $nh_hosts; do
  nh_sshd_conf "$ssh_dir/sshd_$h.conf" "$ssh_dir/sshd_$h.pid" "$ssh_dir" 22 "${addr[$h]}"
  ip netns exec "$(nh_ns "$h")" unshare --uts sh -c "hostname pst-$h && exec /usr/sbin/sshd \
    -f '$ssh_dir/sshd_$h.conf' -E '$ssh_dir/sshd_$h.log'" ||
    skip "sshd did not start in a namespace ($(tail -n 1 "$ssh_dir/sshd_$h.log" 2>/dev/null))"
done
for h in $nh_hosts; do
  ok=0
  for _ in $(seq 50); do
    got=$($ssh_cmd "${addr[$h]}" 'hostname; ip -4 -o addr show eth0' 2>/dev/null || true)
    case "$got" in *"pst-$h"*"${addr[$h]}/24"*) ok=1; break ;; esac
    sleep 0.2
  done
  [ "$ok" = 1 ] || skip "sshd on $h does not answer ($(tail -n 1 "$ssh_dir/sshd_$h.log" 2>/dev/null))"
done
say "2 hosts on ${nh_pfx}br$nh_id ($net.0/24), an sshd in each"

# The hostfile, as on a cluster: each host's address and its slots.
printf '%s slots=2\n%s slots=2\n' "${addr[h0]}" "${addr[h1]}" >"$dir/hosts"
# mpirun's settings for these hosts (README "MPI", several machines): its daemons are started
# with this ssh command; its own and MPI's TCP traffic stay on the hosts' network.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
mpi() {
  timeout "${T:-240}" mpirun --hostfile "$dir/hosts" --bind-to none \
    --mca plm_rsh_agent "$ssh_cmd" --mca oob_tcp_if_include "$net.0/24" \
    --mca btl tcp,self,vader --mca btl_tcp_if_include "$net.0/24" \
    -x OPENBLAS_NUM_THREADS=1 -x ASAN_OPTIONS -x PATH "$@"
}
accuracy() { sed -n 's/.*test_accuracy=//p' "$1" | head -n 1; }
at_least() { python3 -c "import sys; sys.exit(0 if float('${1:-0}') >= $2 else 1)" 2>/dev/null; }
bar=0.80 steps=1500
if ldd "$worker" 2>/dev/null | grep -q libasan; then bar=0.70 steps=400 T=600; fi

# spread: where the ranks run.
if mpi -np 4 sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(hostname) $(ip -4 -o addr show eth0 | \
    awk "{print \$4}")"' >"$dir/spread.log" 2>&1; then
  on0=$(grep -c "on pst-h0 ${addr[h0]}/24" "$dir/spread.log")
  on1=$(grep -c "on pst-h1 ${addr[h1]}/24" "$dir/spread.log")
  [ "$on0" = 2 ] && [ "$on1" = 2 ] && pass "4 ranks over 2 hosts: 2 on each ($(sort "$dir/spread.log" | tr '\n' ';'))" ||
    fail "ranks not spread 2 + 2 over the hosts: $(cat "$dir/spread.log")"
else
  skip "mpirun cannot start ranks on the namespaces' sshds here: $(tail -n 5 "$dir/spread.log")"
fi

# ps: ranks 0, 1 (PS) on h0 and ranks 2, 3 (workers) on h1 (by slot).
say "PS mode over MPI across the hosts ($steps steps)"
if mpi -np 4 "$worker" --transport mpi --ps 2 --model mlp --steps $steps --threads 1 --quiet \
  --checkpoint-dir "$dir/ps" >"$dir/ps.log" 2>&1; then
  acc=$(accuracy "$dir/ps.log")
  at_least "$acc" $bar && pass "PS over MPI across 2 hosts: 2 PS + 2 workers, MLP test_accuracy=$acc" ||
    fail "PS over MPI across hosts: accuracy '$acc' below $bar"
else
  fail "PS over MPI across hosts: $(tail -n 5 "$dir/ps.log")"
fi

# allreduce: one rank per host.
say "allreduce across the hosts ($steps steps)"
if mpi -np 2 --map-by node "$worker" --mode allreduce --model mlp --steps $steps --threads 1 \
  --quiet --checkpoint-dir "$dir/ar" >"$dir/ar.log" 2>&1; then
  acc=$(accuracy "$dir/ar.log")
  at_least "$acc" $bar && ls "$dir/ar"/*.index >/dev/null 2>&1 &&
    pass "allreduce across 2 hosts: MLP test_accuracy=$acc, checkpoint $(cd "$dir/ar" && ls ./*.index | head -n 1)" ||
    fail "allreduce across hosts: accuracy '$acc' (bar $bar) or no checkpoint in $dir/ar"
else
  fail "allreduce across hosts: $(tail -n 5 "$dir/ar.log")"
fi

# launch: pstrain launch --backend mpirun with the hostfile and these mpirun settings in the job
# file; the run completes (state done) and pstrain status reads it.
say "pstrain launch --backend mpirun across the hosts"
cat >"$dir/job.json" <<JOB
{"name": "hosts", "cluster": {"ps": 1, "worker": 2}, "backend": "mpirun", "model": "mlp",
 "batch": 100, "steps": 400, "save_every_steps": 200,
 "threads": 1, "run_dir": "$dir/runs",
 "mpirun": {"hostfile": "$dir/hosts",
            "args": ["--bind-to", "none", "--mca", "plm_rsh_agent", "$ssh_cmd",
                     "--mca", "oob_tcp_if_include", "$net.0/24", "--mca", "btl_tcp_if_include",
                     "$net.0/24", "-x", "ASAN_OPTIONS", "-x", "OPENBLAS_NUM_THREADS=1"]}}
JOB
if timeout "${T:-240}" "$bin/launcher/pstrain" launch "$dir/job.json" >"$dir/launch.out" 2>&1; then
  run=$(ls -d "$dir/runs"/hosts-*/ 2>/dev/null | head -n 1)
  run=${run%/}
  if grep -q '"status":[[:space:]]*"done"' "$run/state.json" 2>/dev/null &&
    ls "$run/checkpoints"/*.index >/dev/null 2>&1 &&
    "$bin/launcher/pstrain" status "$run" >"$dir/status.out" 2>&1 && grep -q "done" "$dir/status.out"; then
    pass "pstrain launch --backend mpirun over 2 hosts: state done, checkpoint $(cd "$run/checkpoints" && ls ./*.index | tail -n 1)"
  else
    fail "launch: state/checkpoint/status wrong: $(cat "$run/state.json" 2>/dev/null | head -c 400); $(tail -n 3 "$dir/status.out" 2>/dev/null)"
  fi
else
  fail "launch --backend mpirun across hosts: $(tail -n 5 "$dir/launch.out")"
fi

# killed: worker rank 3 (on h1) is killed mid-run; the others end with an error naming it.
say "a rank killed on h1"
mpi -np 4 "$worker" --transport mpi --ps 2 --model mlp --steps 100000 --threads 1 \
  --checkpoint-dir "$dir/kill" >"$dir/kill.log" 2>&1 &
job=$!
killed=0
for _ in $(seq 600); do
  if grep -q "step" "$dir/kill.log" 2>/dev/null; then
    pid=$(ip netns pids "$(nh_ns h1)" | while read -r p; do
      tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--checkpoint-dir $dir/kill" &&
        grep -q '^OMPI_COMM_WORLD_RANK=3$' <(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null) && echo "$p"
    done | head -n 1)
    if [ -n "$pid" ]; then
      kill -9 "$pid" && killed=$pid
      break
    fi
  fi
  sleep 0.2
done
rc=0
wait "$job" || rc=$?
if [ "$killed" = 0 ]; then
  fail "killed: rank 3 was not found on h1 to kill: $(tail -n 5 "$dir/kill.log")"
elif [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
  fail "killed: the job exited $rc after rank 3 (pid $killed) was killed (124: it hung)"
elif grep -Eq "rank 3 \(pid $killed on pst-h1\) exited|rank 3 with PID $killed" "$dir/kill.log"; then
  pass "a rank killed on h1 (pid $killed): the job exited $rc naming it ($(grep -Eom1 "rank 3 \(pid $killed on pst-h1\) exited|rank 3 with PID $killed[^.]*" "$dir/kill.log"))"
else
  fail "killed: exit $rc, but no line names rank 3 or pid $killed: $(tail -n 8 "$dir/kill.log")"
fi

[ "$failures" = 0 ] || { echo "test_mpi_hosts: $failures check(s) failed; logs in $dir"; PST_KEEP_TEST_DIR=1; exit 1; }
echo "test_mpi_hosts: all checks passed"
