#!/usr/bin/env bash
# Makes the job's Secret "pstrain-job": a new job token and, for mutual TLS, a CA with one
# certificate naming every pod of the job. Writes OUT/secret.yaml (mode 0600) to apply with
# `kubectl apply -f OUT/secret.yaml`, and keeps the CA (OUT/tls/ca.key) in OUT.
#
#   deploy/kubernetes/make_secret.sh OUT PS WORKERS [--domain NS.svc.cluster.local] [--no-tls]
#
# PS and WORKERS are the largest counts you will run (certificates name pstrain-ps-0 ..
# pstrain-ps-<PS-1> and pstrain-worker-0 .. pstrain-worker-<WORKERS-1>, under their headless
# Services, and with --domain also fully qualified). --no-tls: the token only (then the pods
# need PST_INSECURE=1). Needs openssl.
set -euo pipefail
usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 3 ] || usage
out=$1 ps=$2 workers=$3
shift 3
domain="" tls=1
while [ $# -gt 0 ]; do
  case "$1" in
    --domain) [ $# -ge 2 ] || usage; domain=${2#.}; shift 2 ;;
    --no-tls) tls=0; shift ;;
    *) usage ;;
  esac
done
for v in "$ps" "$workers"; do
  case "$v" in '' | *[!0-9]* | 0) echo "make_secret.sh: '$v' is not a count >= 1" >&2; exit 2 ;; esac
done
command -v openssl >/dev/null || { echo "make_secret.sh: needs openssl" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
umask 077
mkdir -p "$out"
[ ! -e "$out/token" ] || { echo "make_secret.sh: $out/token exists; use a new directory" >&2; exit 2; }
openssl rand -hex 32 >"$out/token"
files=(token)
if [ "$tls" = 1 ]; then
  names=""
  add() { names+="${names:+,}$1"; [ -z "$domain" ] || names+=",$1.$domain"; }
  for ((i = 0; i < ps; i++)); do add "pstrain-ps-$i.pstrain-ps"; done
  for ((i = 0; i < workers; i++)); do add "pstrain-worker-$i.pstrain-worker"; done
  "$here/../../scripts/tls_certs.sh" "$out/tls" "job=$names" >/dev/null
  cp "$out/tls/job/ca.crt" "$out/tls/job/task.crt" "$out/tls/job/task.key" "$out/"
  files+=(ca.crt task.crt task.key)
fi
{
  echo "# The job's token and TLS files (deploy/kubernetes/make_secret.sh). Keep this file private."
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: pstrain-job"
  echo "  labels:"
  echo "    app.kubernetes.io/name: pstrain"
  echo "type: Opaque"
  echo "data:"
  for f in "${files[@]}"; do echo "  $f: $(base64 -w0 <"$out/$f")"; done
} >"$out/secret.yaml"
what="token"
[ "$tls" = 0 ] || what="token and TLS files for $ps PS and $workers workers"
echo "$out/secret.yaml: $what; kubectl apply -f $out/secret.yaml"
