#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && pass || fail" is safe: pass never fails
# The Kubernetes recipe without a cluster:
#   1. every manifest of deploy/kubernetes (and the Secret make_secret.sh writes) validates
#      against Kubernetes' schemas, field names and cross-references (tests/k8s/validate.mjs,
#      npm kubernetes-models + js-yaml installed into tests/k8s/node_modules), and each broken
#      manifest of tests/k8s/bad fails with the message its "# expect:" lines name;
#   2. deploy/kubernetes/entrypoint.sh, run with the environment a pod has (hostname
#      pstrain-ps-1, JOB_COMPLETION_INDEX=0, the ConfigMap's variables, the Secret's files),
#      derives the right TF_CONFIG and command line, makes private copies of the secrets,
#      forwards SIGTERM to the PS, and reports every misconfiguration by name; the real
#      pstrain-ps and pstrain-worker accept what it derives.
# Exits 77 (ctest: skipped) when node/npm are missing or npm cannot install the packages.
set -euo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
k8s=$src/deploy/kubernetes
val=$src/tests/k8s
skip() {
  echo "SKIP test_kubernetes: $*"
  exit 77
}
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

command -v node >/dev/null && command -v npm >/dev/null ||
  skip "node and npm are not installed (Debian: apt-get install nodejs npm)"
command -v openssl >/dev/null || skip "openssl is not installed (make_secret.sh needs it)"

dir=$(mktemp -d /tmp/pst-k8s.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# ---- the validator's packages (pinned by tests/k8s/package-lock.json; git ignores them) -------
(
  flock 9
  if [ ! -f "$val/node_modules/.package-lock.json" ] ||
    [ "$val/package-lock.json" -nt "$val/node_modules/.package-lock.json" ]; then
    echo "test_kubernetes: installing kubernetes-models and js-yaml into $val/node_modules"
    npm ci --prefix "$val" --no-audit --no-fund --loglevel=error >"$dir/npm.log" 2>&1 || exit 3
  fi
) 9>"$val/.install.lock" || skip "npm could not install the validator's packages: $(tail -n 3 "$dir/npm.log" | tr '\n' ' ')"

# ---- 1. manifests --------------------------------------------------------------------------
"$k8s/make_secret.sh" "$dir/secret" 2 3 --domain default.svc.cluster.local >/dev/null
"$k8s/make_secret.sh" "$dir/secret-notls" 2 3 --no-tls >/dev/null
for secret in "$dir/secret/secret.yaml" "$dir/secret-notls/secret.yaml"; do
  if out=$(node "$val/validate.mjs" "$k8s"/*.yaml "$secret" 2>&1); then
    n=$(grep -c ': valid$' <<<"$out")
    pass "manifests valid with $(basename "$(dirname "$secret")") ($n objects)"
  else
    fail "manifests do not validate:"$'\n'"$out"
  fi
done
for kind in Service/pstrain-ps Service/pstrain-worker StatefulSet/pstrain-ps Job/pstrain-worker \
  ConfigMap/pstrain-job PersistentVolumeClaim/pstrain-checkpoints NetworkPolicy/pstrain \
  Secret/pstrain-job; do
  grep -q "$kind: valid" <<<"$out" || fail "$kind was not validated"
done
for f in "$val"/bad/*.yaml; do
  if out=$(node "$val/validate.mjs" "$f" 2>&1); then
    fail "$(basename "$f") validates but should not"
    continue
  fi
  ok=1
  while IFS= read -r want; do
    [[ "$out" == *"$want"* ]] || { ok=0; fail "$(basename "$f"): no '$want' in: $out"; }
  done < <(sed -n 's/^# expect: //p' "$f")
  [ "$ok" = 0 ] || pass "$(basename "$f") refused: $(head -n 1 <<<"$out")"
done

# ---- 2. the entrypoint -----------------------------------------------------------------------
# The pod's environment: the ConfigMap's variables, the Secret's files mounted group-readable.
eval "$(node "$val/configmap_env.mjs" "$k8s/configmap.yaml")"
[ "$PST_NUM_PS" = 2 ] && [ "$PST_NUM_WORKERS" = 3 ] || fail "configmap.yaml: expected 2 PS and 3 workers"
mnt=$dir/mnt
mkdir -p "$mnt"
cp "$dir/secret/token" "$dir/secret/ca.crt" "$dir/secret/task.crt" "$dir/secret/task.key" "$mnt/"
chmod 440 "$mnt"/*
export PST_SECRET_DIR=$mnt

# A stand-in for pstrain-ps / pstrain-worker: records what it was given, then does $FAKE_DO.
fake=$dir/fake
cat >"$fake" <<'EOF'
#!/usr/bin/env bash
out=$FAKE_OUT
{
  echo "pid=$$"
  echo "TF_CONFIG=$TF_CONFIG"
  echo "args=$*"
  echo "token_file=$PST_JOB_TOKEN_FILE mode=$(stat -c %a "$PST_JOB_TOKEN_FILE")"
  echo "token_same=$(cmp -s "$PST_JOB_TOKEN_FILE" "$PST_SECRET_DIR/token" && echo yes)"
  echo "tls_dir=${PST_TLS_DIR:-none}"
  [ -z "${PST_TLS_DIR:-}" ] || echo "key_mode=$(stat -c %a "$PST_TLS_DIR/task.key")"
  echo "token_env=${PST_JOB_TOKEN:-}"
} >"$out.tmp"
mv "$out.tmp" "$out"
case "${FAKE_DO:-exit0}" in
  exit0) exit 0 ;;
  exit3) exit 3 ;;
  waitterm) trap 'echo got TERM >>"$out.sig"; exit 143' TERM; while :; do sleep 0.1; done ;;
esac
EOF
chmod +x "$fake"
ep() { # env... : runs the entrypoint with a pod's extra environment; output in $dir/ep.out
  timeout 60 env PST_PS_BIN="$fake" PST_WORKER_BIN="$fake" PST_PRIVATE_DIR="$dir/private" \
    FAKE_OUT="$dir/fake.out" "$@" >"$dir/ep.out" 2>&1
}
ep_bg() { # the same in the background; $epid is the entrypoint (env execs it)
  env PST_PS_BIN="$fake" PST_WORKER_BIN="$fake" PST_PRIVATE_DIR="$dir/private" \
    FAKE_OUT="$dir/fake.out" "$@" >"$dir/ep.out" 2>&1 &
  epid=$!
  pids+=("$epid")
}
field() { sed -n "s/^$1=//p" "$dir/fake.out"; }
ps_list='"pstrain-ps-0.pstrain-ps:2222", "pstrain-ps-1.pstrain-ps:2222"'
w_list='"pstrain-worker-0.pstrain-worker:2222", "pstrain-worker-1.pstrain-worker:2222", "pstrain-worker-2.pstrain-worker:2222"'

# PS pod pstrain-ps-1: runs the PS, which finishes; the pod idles until SIGTERM.
rm -f "$dir/fake.out"
ep_bg HOSTNAME=pstrain-ps-1 "$k8s/entrypoint.sh" ps
for _ in $(seq 100); do grep -q idling "$dir/ep.out" 2>/dev/null && break; sleep 0.05; done
want="{\"cluster\": {\"ps\": [$ps_list], \"worker\": [$w_list]}, \"task\": {\"type\": \"ps\", \"index\": 1}}"
[ "$(field TF_CONFIG)" = "$want" ] && pass "pstrain-ps-1: TF_CONFIG $want" ||
  fail "pstrain-ps-1: TF_CONFIG '$(field TF_CONFIG)', want '$want'"
[ "$(field args)" = "--listen 0.0.0.0:2222" ] || fail "pstrain-ps-1: args '$(field args)', want '--listen 0.0.0.0:2222'"
[ "$(field token_file)" = "$dir/private/token mode=600" ] && [ "$(field token_same)" = yes ] &&
  pass "token copied to a private 0600 file" || fail "token: '$(field token_file)' same='$(field token_same)'"
[ "$(field tls_dir)" = "$dir/private/tls" ] && [ "$(field key_mode)" = 600 ] && pass "TLS files copied (PST_TLS_DIR)" ||
  fail "TLS: '$(field tls_dir)'"
grep -q idling "$dir/ep.out" && kill -0 "$epid" 2>/dev/null && pass "finished PS pod idles" ||
  fail "finished PS pod does not idle: $(cat "$dir/ep.out")"
kill -TERM "$epid"
rc=0
wait "$epid" || rc=$?
[ "$rc" = 0 ] && pass "idle PS pod exits 0 on SIGTERM" || fail "idle PS pod exit $rc on SIGTERM"

# A PS that fails: the pod fails with its code (Kubernetes restarts it).
rc=0
ep HOSTNAME=pstrain-ps-0 FAKE_DO=exit3 "$k8s/entrypoint.sh" ps || rc=$?
[ "$rc" = 3 ] && pass "failed PS: pod exits 3" || fail "failed PS: pod exit $rc, want 3"

# SIGTERM (pod deletion) reaches a running PS.
rm -f "$dir/fake.out" "$dir/fake.out.sig"
ep_bg HOSTNAME=pstrain-ps-0 FAKE_DO=waitterm "$k8s/entrypoint.sh" ps
for _ in $(seq 100); do [ -f "$dir/fake.out" ] && break; sleep 0.05; done
sleep 0.2
kill -TERM "$epid" 2>/dev/null || true
rc=0
wait "$epid" || rc=$?
[ -f "$dir/fake.out.sig" ] && [ "$rc" = 143 ] && pass "SIGTERM forwarded to the PS (exit 143)" ||
  fail "SIGTERM: PS got it: $([ -f "$dir/fake.out.sig" ] && echo yes || echo no), exit $rc"

# Worker 0 of the Indexed Job: exec'd (same pid), with the checkpoint dir and the ConfigMap's flags.
rm -f "$dir/fake.out"
# shellcheck disable=SC2016  # $$ is the inner shell's
ep HOSTNAME=pstrain-worker-0 JOB_COMPLETION_INDEX=0 \
  bash -c 'echo "shell=$$" >"$1"; exec "$0" worker --quiet' "$k8s/entrypoint.sh" "$dir/shell.pid"
want="{\"cluster\": {\"ps\": [$ps_list], \"worker\": [$w_list]}, \"task\": {\"type\": \"worker\", \"index\": 0}}"
[ "$(field TF_CONFIG)" = "$want" ] && pass "worker 0: TF_CONFIG $want" ||
  fail "worker 0: TF_CONFIG '$(field TF_CONFIG)', want '$want'"
read -r -a flags <<<"$PST_WORKER_FLAGS"
want_args="--listen 0.0.0.0:2222 --checkpoint-dir /ckpt ${flags[*]} --quiet"
[ "$(field args)" = "$want_args" ] && pass "worker 0: $want_args" || fail "worker 0: args '$(field args)', want '$want_args'"
[ "pid=$(sed -n 's/^shell=//p' "$dir/shell.pid")" = "$(grep '^pid=' "$dir/fake.out")" ] &&
  pass "worker is exec'd (signals reach it directly)" || fail "worker not exec'd"

# Workers as a StatefulSet (no JOB_COMPLETION_INDEX), a cluster domain, a Kubeflow TF_CONFIG.
ep HOSTNAME=pstrain-worker-2 PST_CLUSTER_DOMAIN=ns1.svc.cluster.local "$k8s/entrypoint.sh" worker
tf=$(field TF_CONFIG)
[[ "$tf" == *'"task": {"type": "worker", "index": 2}'* && "$tf" == *'"pstrain-ps-1.pstrain-ps.ns1.svc.cluster.local:2222"'* ]] &&
  pass "hostname ordinal and PST_CLUSTER_DOMAIN" || fail "ordinal/domain: $tf"
kf='{"cluster": {"ps": ["job-ps-0.ns.svc:2222"], "worker": ["job-worker-0.ns.svc:2222"]}, "task": {"type": "worker", "index": 0}}'
ep env -u PST_NUM_PS TF_CONFIG="$kf" HOSTNAME=job-worker-0 "$k8s/entrypoint.sh" worker
[ "$(field TF_CONFIG)" = "$kf" ] && pass "a given TF_CONFIG (Kubeflow TFJob) is kept" || fail "TF_CONFIG not kept: $(field TF_CONFIG)"

# Cleartext only when asked for.
nt=$dir/mnt-notls
mkdir -p "$nt"
cp "$dir/secret-notls/token" "$nt/"
chmod 440 "$nt/token"
ep PST_SECRET_DIR="$nt" PST_INSECURE=1 HOSTNAME=pstrain-ps-0 FAKE_DO=exit3 "$k8s/entrypoint.sh" ps || true
[ "$(field args)" = "--insecure --listen 0.0.0.0:2222" ] && [ "$(field tls_dir)" = none ] &&
  pass "PST_INSECURE=1 without TLS files: --insecure" || fail "insecure: args '$(field args)' tls '$(field tls_dir)'"
ep PST_ENTRYPOINT_DRY_RUN=1 HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
grep -q '^command: .*/fake --listen 0.0.0.0:2222$' "$dir/ep.out" && grep -q '^TF_CONFIG={' "$dir/ep.out" &&
  pass "dry run prints TF_CONFIG and the command" || fail "dry run: $(cat "$dir/ep.out")"

# Misconfigurations, each named.
bad_case() { # want env...
  local want=$1 rc=0
  shift
  rm -f "$dir/fake.out"
  ep "$@" || rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$want" "$dir/ep.out" && [ ! -f "$dir/fake.out" ]; then
    pass "refused: $(tail -n 1 "$dir/ep.out")"
  else
    fail "want exit 2 and '$want', got exit $rc: $(cat "$dir/ep.out")"
  fi
}
bad_case "pod pstrain-ps-2 is PS 2, but PST_NUM_PS is 2" HOSTNAME=pstrain-ps-2 "$k8s/entrypoint.sh" ps
bad_case "hostname 'web-0' is not 'pstrain-ps-<ordinal>'" HOSTNAME=web-0 "$k8s/entrypoint.sh" ps
bad_case "the ordinal of hostname 'pstrain-ps-x' is 'x', not a whole number" HOSTNAME=pstrain-ps-x "$k8s/entrypoint.sh" ps
bad_case "JOB_COMPLETION_INDEX 3 is not below PST_NUM_WORKERS 3" JOB_COMPLETION_INDEX=3 "$k8s/entrypoint.sh" worker
bad_case "JOB_COMPLETION_INDEX is 'a', not a whole number" JOB_COMPLETION_INDEX=a "$k8s/entrypoint.sh" worker
bad_case "PST_NUM_WORKERS is not set" env -u PST_NUM_WORKERS HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
bad_case "PST_NUM_PS is 0, not in [1, 4096]" PST_NUM_PS=0 HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
bad_case "PST_PORT is '22x', not a whole number" PST_PORT=22x HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
bad_case "no job token at $dir/none/token" PST_SECRET_DIR="$dir/none" HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
bad_case "no TLS files in $nt" PST_SECRET_DIR="$nt" HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
mkdir -p "$dir/half"
cp "$mnt/token" "$mnt/ca.crt" "$dir/half/"
bad_case "has TLS files but no task.crt" PST_SECRET_DIR="$dir/half" HOSTNAME=pstrain-ps-0 "$k8s/entrypoint.sh" ps
bad_case "usage: pstrain-entrypoint ps|worker" "$k8s/entrypoint.sh" chief

# The real programs take what the entrypoint derives. A free port for this machine's run.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
real_ps=$bin/ps/pstrain-ps
real_worker=$bin/worker/pstrain-worker
if [ -x "$real_ps" ] && [ -x "$real_worker" ]; then
  rc=0
  env PST_PRIVATE_DIR="$dir/private-w" PST_PORT="$port" PST_CHECKPOINT_DIR="$dir/ckpt" \
    PST_WORKER_FLAGS="--model softmax --steps 1 --connect-timeout-ms 1500 --quiet" \
    PST_WORKER_BIN="$real_worker" HOSTNAME=pstrain-worker-1 JOB_COMPLETION_INDEX=1 \
    "$k8s/entrypoint.sh" worker >"$dir/real-w.out" 2>&1 || rc=$?
  if [ "$rc" != 0 ] && grep -q "pstrain-ps-0.pstrain-ps:$port" "$dir/real-w.out" &&
    ! grep -q "TF_CONFIG names\|unknown or incomplete flag" "$dir/real-w.out"; then
    pass "pstrain-worker runs worker 1 from it (and names the unreachable PS)"
  else
    fail "pstrain-worker (exit $rc): $(cat "$dir/real-w.out")"
  fi
  env PST_PRIVATE_DIR="$dir/private-p" PST_PORT="$port" PST_PS_BIN="$real_ps" \
    HOSTNAME=pstrain-ps-1 "$k8s/entrypoint.sh" ps >"$dir/real-p.out" 2>&1 &
  epid=$!
  pids+=("$epid")
  for _ in $(seq 100); do grep -q "serving on" "$dir/real-p.out" 2>/dev/null && break; sleep 0.05; done
  grep -q "\[/job:ps/replica:0/task:1\] serving on pstrain-ps-1.pstrain-ps:$port" "$dir/real-p.out" &&
    pass "pstrain-ps serves as PS 1 from it" || fail "pstrain-ps: $(cat "$dir/real-p.out")"
  kill -TERM "$epid" 2>/dev/null || true
  rc=0
  wait "$epid" || rc=$?
  grep -q "stopping on signal 15" "$dir/real-p.out" && [ "$rc" = 1 ] &&
    pass "pod deletion stops pstrain-ps (SIGTERM, exit 1)" || fail "SIGTERM to pstrain-ps: exit $rc: $(cat "$dir/real-p.out")"
else
  fail "$real_ps or $real_worker is not built"
fi

if [ "$failures" -gt 0 ]; then
  echo "test_kubernetes: $failures failures"
  exit 1
fi
echo "test_kubernetes: all checks passed"
