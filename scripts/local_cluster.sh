#!/usr/bin/env bash
# Starts a pstrain job on this machine: P parameter servers and W workers on 127.0.0.1 with
# free ports (2 and 2 by default), waits for the workers, and makes sure the PS exit too.
#
#   scripts/local_cluster.sh [--ps P] [--workers W] [--build DIR] [--] [pstrain-worker flags]
#
# Worker flags apply to every worker (e.g. --model mlp --steps 3000 --mode sync). Logs go to
# $PST_JOB_DIR (default: a new temporary directory): cluster.json, ps-K.log, worker-K.log.
# Exit status: 0 when every worker and PS succeeded.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
n_ps=2
n_workers=2
build="$here/build"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ps) n_ps="$2"; shift 2 ;;
    --workers) n_workers="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
for bin in pstrain-ps pstrain-worker; do
  if [[ ! -x "$build/${bin#pstrain-}/$bin" && ! -x "$build/ps/$bin" && ! -x "$build/worker/$bin" ]]; then
    echo "local_cluster: $bin is not built under $build (run scripts/setup.sh)" >&2
    exit 2
  fi
done
ps_bin="$build/ps/pstrain-ps"
worker_bin="$build/worker/pstrain-worker"
job_dir="${PST_JOB_DIR:-$(mktemp -d /tmp/pstrain-job.XXXXXX)}"
mkdir -p "$job_dir"
# Every task needs the job's token (README "Security"): a new one per job unless given.
if [[ -z "${PST_JOB_TOKEN_FILE:-}" && -z "${PST_JOB_TOKEN:-}" ]]; then
  [[ -f "$job_dir/token" ]] || "$build/launcher/pstrain" token new "$job_dir/token"
  export PST_JOB_TOKEN_FILE="$job_dir/token"
fi

# Free ports: random ports below the kernel's ephemeral range (ip_local_port_range, 32768 and up
# on Debian) that nothing listens on (read from /proc/net/tcp*, so no extra tool is needed),
# distinct from each other. Ports in the ephemeral range could be handed to another process's
# connection or port-0 bind between this choice and the task's listen (seen under CI load).
used=$(awk 'NR > 1 && $4 == "0A" {split($2, a, ":"); print a[2]}' /proc/net/tcp /proc/net/tcp6 \
         2>/dev/null | while read -r h; do echo $((16#$h)); done | sort -u)
ports=""
while [[ $(wc -w <<<"$ports") -lt $((n_ps + n_workers)) ]]; do
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  p=$((20000 + (RANDOM * 32768 + RANDOM) % ((${low:-32768} > 21000 ? ${low:-32768} : 32768) - 20000)))
  grep -qx "$p" <<<"$used" && continue
  [[ " $ports " == *" $p "* ]] && continue
  ports="$ports $p"
done
read -r -a port <<<"$ports"
{
  printf '{"ps": ['
  for ((i = 0; i < n_ps; i++)); do printf '%s"127.0.0.1:%s"' "$([[ $i -gt 0 ]] && echo ,)" "${port[$i]}"; done
  printf '], "worker": ['
  for ((i = 0; i < n_workers; i++)); do printf '%s"127.0.0.1:%s"' "$([[ $i -gt 0 ]] && echo ,)" "${port[$((n_ps + i))]}"; done
  printf ']}\n'
} >"$job_dir/cluster.json"
echo "local_cluster: $n_ps PS + $n_workers workers, cluster $job_dir/cluster.json, logs in $job_dir"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup INT TERM

ps_pids=()
for ((i = 0; i < n_ps; i++)); do
  "$ps_bin" --cluster "$job_dir/cluster.json" --task "$i" >"$job_dir/ps-$i.log" 2>&1 &
  ps_pids+=($!); pids+=($!)
done
# Share the cores between the workers (a later --threads in the flags wins).
threads=$(( $(nproc) / n_workers )); [[ $threads -ge 1 ]] || threads=1
set -- --threads "$threads" "$@"
worker_pids=()
for ((i = 0; i < n_workers; i++)); do
  if [[ $i -eq 0 ]]; then
    # The chief's output is the job's output.
    "$worker_bin" --cluster "$job_dir/cluster.json" --task 0 "$@" 2>&1 | tee "$job_dir/worker-0.log" &
  else
    "$worker_bin" --cluster "$job_dir/cluster.json" --task "$i" "$@" >"$job_dir/worker-$i.log" 2>&1 &
  fi
  worker_pids+=($!); pids+=($!)
done

status=0
for ((i = 0; i < n_workers; i++)); do
  if ! wait "${worker_pids[$i]}"; then
    echo "local_cluster: worker $i failed (see $job_dir/worker-$i.log)" >&2
    tail -n 3 "$job_dir/worker-$i.log" >&2 || true
    status=1
  fi
done
# The PS exit once every worker said it is done; give them a moment, then stop them.
for ((i = 0; i < n_ps; i++)); do
  for _ in $(seq 50); do kill -0 "${ps_pids[$i]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${ps_pids[$i]}" 2>/dev/null; then
    echo "local_cluster: ps $i did not exit; stopping it" >&2
    kill "${ps_pids[$i]}" 2>/dev/null || true
    status=1
  fi
  if ! wait "${ps_pids[$i]}"; then
    [[ $status -ne 0 ]] || echo "local_cluster: ps $i failed (see $job_dir/ps-$i.log)" >&2
    status=1
  fi
done
exit $status
