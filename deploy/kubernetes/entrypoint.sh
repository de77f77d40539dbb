#!/usr/bin/env bash
# pstrain's container entrypoint on Kubernetes: works out which task this pod is, writes the
# cluster into TF_CONFIG, makes private copies of the job's secrets and runs pstrain-ps or
# pstrain-worker. See deploy/kubernetes/README.md.
#
#   pstrain-entrypoint ps|worker [extra flags for the program]
#
# Which task: a PS pod of the StatefulSet PST_PS_NAME is "<PST_PS_NAME>-<ordinal>" (its
# hostname), a worker pod of the Indexed Job PST_WORKER_NAME has JOB_COMPLETION_INDEX (or, for
# workers run as a StatefulSet, the ordinal of its hostname). Task i of a job is reached at
# "<name>-<i>.<name>[.PST_CLUSTER_DOMAIN]:PST_PORT" through the job's headless Service.
#
# Environment:
#   PST_NUM_PS, PST_NUM_WORKERS   the task counts (required, unless TF_CONFIG is already set,
#                                 e.g. by Kubeflow's TFJob operator: then it is used as it is)
#   PST_PS_NAME (pstrain-ps), PST_WORKER_NAME (pstrain-worker)
#                                 StatefulSet / Job names, equal to their headless Services
#   PST_PORT (2222)               every task's port
#   PST_CLUSTER_DOMAIN            appended to host names when set (e.g. ns.svc.cluster.local)
#   PST_SECRET_DIR (/etc/pstrain/secret)  the Secret's files: token, and for TLS ca.crt,
#                                 task.crt, task.key
#   PST_PRIVATE_DIR (/run/pstrain)  where the private copies go (a memory-backed emptyDir)
#   PST_INSECURE=1                no TLS files: pass --insecure (cleartext on the pod network)
#   PST_CHECKPOINT_DIR (/ckpt)    workers' --checkpoint-dir (the shared PersistentVolumeClaim)
#   PST_PS_FLAGS, PST_WORKER_FLAGS  more flags, split at spaces
#   PST_PS_BIN, PST_WORKER_BIN    the programs (default: pstrain-ps, pstrain-worker on PATH)
#   PST_ENTRYPOINT_DRY_RUN=1      print TF_CONFIG and the command instead of running it
set -euo pipefail
me=pstrain-entrypoint
die() {
  echo "$me: $*" >&2
  exit 2
}

role=${1:-}
[ "$role" = ps ] || [ "$role" = worker ] || die "usage: $me ps|worker [flags]"
shift

# A whole number in [lo, hi], or an error naming where it came from.
number() { # name value lo hi
  case "$2" in '' | *[!0-9]*) die "$1 is '$2', not a whole number" ;; esac
  if [ ${#2} -gt 6 ] || [ "$((10#$2))" -lt "$3" ] || [ "$((10#$2))" -gt "$4" ]; then
    die "$1 is $2, not in [$3, $4]"
  fi
}
name_ok() { # what value: a DNS label
  [[ "$2" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "$1 '$2' is not a DNS label"
}

# ---- which task, and the cluster -------------------------------------------------------------
if [ -n "${TF_CONFIG:-}" ] && [ -z "${PST_NUM_PS:-}" ]; then
  echo "$me: using the TF_CONFIG this pod was given" >&2
else
  ps_name=${PST_PS_NAME:-pstrain-ps}
  worker_name=${PST_WORKER_NAME:-pstrain-worker}
  name_ok PST_PS_NAME "$ps_name"
  name_ok PST_WORKER_NAME "$worker_name"
  port=${PST_PORT:-2222}
  number PST_PORT "$port" 1 65535
  [ -n "${PST_NUM_PS:-}" ] || die "PST_NUM_PS is not set (the number of PS pods)"
  [ -n "${PST_NUM_WORKERS:-}" ] || die "PST_NUM_WORKERS is not set (the number of worker pods)"
  number PST_NUM_PS "$PST_NUM_PS" 1 4096
  number PST_NUM_WORKERS "$PST_NUM_WORKERS" 1 4096
  domain=${PST_CLUSTER_DOMAIN:-}
  domain=${domain#.}
  [ -z "$domain" ] || [[ "$domain" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
    die "PST_CLUSTER_DOMAIN '$domain' is not a DNS name"

  host=${PST_HOSTNAME:-${HOSTNAME:-$(hostname)}}
  host=${host%%.*}
  if [ "$role" = ps ]; then
    [[ "$host" == "$ps_name"-* ]] ||
      die "hostname '$host' is not '$ps_name-<ordinal>': run PS pods from the StatefulSet $ps_name"
    index=${host#"$ps_name"-}
    number "the ordinal of hostname '$host'" "$index" 0 4095
    [ "$index" -lt "$PST_NUM_PS" ] ||
      die "pod $host is PS $index, but PST_NUM_PS is $PST_NUM_PS: scale the StatefulSet and PST_NUM_PS together"
  elif [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    index=$JOB_COMPLETION_INDEX
    number JOB_COMPLETION_INDEX "$index" 0 4095
    [ "$index" -lt "$PST_NUM_WORKERS" ] ||
      die "JOB_COMPLETION_INDEX $index is not below PST_NUM_WORKERS $PST_NUM_WORKERS: give the Job completions = PST_NUM_WORKERS"
  else
    [[ "$host" == "$worker_name"-* ]] ||
      die "no JOB_COMPLETION_INDEX and hostname '$host' is not '$worker_name-<ordinal>'"
    index=${host#"$worker_name"-}
    number "the ordinal of hostname '$host'" "$index" 0 4095
    [ "$index" -lt "$PST_NUM_WORKERS" ] ||
      die "pod $host is worker $index, but PST_NUM_WORKERS is $PST_NUM_WORKERS"
  fi

  addresses() { # name count
    local i sep=""
    for ((i = 0; i < $2; i++)); do
      printf '%s"%s-%d.%s%s:%d"' "$sep" "$1" "$i" "$1" "${domain:+.$domain}" "$port"
      sep=", "
    done
  }
  index=$((10#$index))
  # shellcheck disable=SC2089  # the quotes are JSON, meant literally
  printf -v TF_CONFIG '{"cluster": {"ps": [%s], "worker": [%s]}, "task": {"type": "%s", "index": %d}}' \
    "$(addresses "$ps_name" "$PST_NUM_PS")" "$(addresses "$worker_name" "$PST_NUM_WORKERS")" \
    "$role" "$index"
  # shellcheck disable=SC2090
  export TF_CONFIG
fi

# ---- secrets: private copies ------------------------------------------------------------------
# The Secret is mounted group-readable (fsGroup); pstrain refuses a token file others can read,
# so each pod copies what it needs into a directory only its user can read.
secret=${PST_SECRET_DIR:-/etc/pstrain/secret}
private=${PST_PRIVATE_DIR:-/run/pstrain}
[ -r "$secret/token" ] || die "no job token at $secret/token: mount the Secret there (key 'token')"
umask 077
mkdir -p "$private"
chmod 700 "$private"
cp "$secret/token" "$private/token"
chmod 600 "$private/token"
export PST_JOB_TOKEN_FILE=$private/token
unset PST_JOB_TOKEN
sec_flags=()
if [ -r "$secret/ca.crt" ] || [ -r "$secret/task.crt" ] || [ -r "$secret/task.key" ]; then
  for f in ca.crt task.crt task.key; do
    [ -r "$secret/$f" ] || die "$secret has TLS files but no $f (the Secret needs ca.crt, task.crt and task.key)"
  done
  mkdir -p "$private/tls"
  cp "$secret/ca.crt" "$secret/task.crt" "$secret/task.key" "$private/tls/"
  chmod 600 "$private/tls/"*
  export PST_TLS_DIR=$private/tls
elif [ "${PST_INSECURE:-0}" = 1 ]; then
  echo "$me: warning: no TLS files in $secret; PST_INSECURE=1 runs the job in cleartext" >&2
  sec_flags=(--insecure)
else
  die "no TLS files in $secret (ca.crt, task.crt, task.key): add them to the Secret, or set PST_INSECURE=1 to run in cleartext on a network you trust"
fi

# ---- the program ------------------------------------------------------------------------------
if [ "$role" = ps ]; then
  bin=${PST_PS_BIN:-pstrain-ps}
  read -r -a extra <<<"${PST_PS_FLAGS:-}"
  # A pod serves on every interface of its own network namespace (its Service DNS name may not
  # resolve inside it); the NetworkPolicy and the job's token decide who reaches it.
  cmd=("$bin" "${sec_flags[@]}" --listen "0.0.0.0:${port:-${PST_PORT:-2222}}" "${extra[@]}" "$@")
else
  bin=${PST_WORKER_BIN:-pstrain-worker}
  read -r -a extra <<<"${PST_WORKER_FLAGS:-}"
  cmd=("$bin" "${sec_flags[@]}" --listen "0.0.0.0:${port:-${PST_PORT:-2222}}" --checkpoint-dir "${PST_CHECKPOINT_DIR:-/ckpt}" "${extra[@]}" "$@")
fi
if [ "${PST_ENTRYPOINT_DRY_RUN:-0}" = 1 ]; then
  echo "TF_CONFIG=$TF_CONFIG"
  echo "PST_JOB_TOKEN_FILE=$PST_JOB_TOKEN_FILE"
  echo "PST_TLS_DIR=${PST_TLS_DIR:-}"
  echo "command: ${cmd[*]}"
  exit 0
fi
echo "$me: $role task from TF_CONFIG=$TF_CONFIG" >&2
[ "$role" = worker ] && exec "${cmd[@]}"

# A PS exits 0 once every worker finished. A StatefulSet restarts whatever exits, so the pod
# stays up idle instead (delete the StatefulSet when the worker Job is complete); a PS that
# fails exits with its code and Kubernetes restarts it.
"${cmd[@]}" &
child=$!
signalled=0
trap 'signalled=1; kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  signalled=0
  rc=0
  wait "$child" || rc=$?
  [ "$signalled" = 1 ] || break # else wait returned for the signal: wait for the PS itself
done
[ "$rc" -eq 0 ] || exit "$rc"
echo "$me: the PS finished (every worker is done); idling until the StatefulSet is deleted" >&2
sleep infinity &
idle=$!
trap 'kill "$idle"; exit 0' TERM INT
wait "$idle"
