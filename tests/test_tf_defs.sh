#!/usr/bin/env bash
# Every graph and checkpoint pstrain writes, checked against TensorFlow 1.15's own definitions
# (tests/tf_defs_check.py with tests/data/tf_defs: TF's .proto files and op registry):
#   - each zoo model trained 2 steps by pstrain-worker (each optimizer once), its checkpoint
#     (.index, .data) and .meta (nodes, attrs, input counts and dtypes, SaverDef and the saver
#     subgraph against the checkpoint's keys, VariableDefs);
#   - distributed jobs of 2 PS (3 PS, reading TFRecord input) and 1 worker with partitioned
#     weights: their sharded checkpoints, the slice keys TF's reader computes, the slice specs
#     of the saver subgraph;
#   - VGG-16's .meta (single process and placed on 2 PS with partitioned weights) from
#     `pstrain meta export`, which must stay under 10 MB;
#   - the checker itself on a damaged copy (it must find what it is for);
#   - the exported saver subgraph run as TF's Saver.restore() runs it (filename fed,
#     save/restore_all), by `pstrain meta check`, single process and partitioned;
#   - `pstrain export saved-model` (from a single-process and a partitioned checkpoint): the
#     version directory compared field by field with TensorFlow's SavedModel in
#     tests/data/tf/serving_half_plus_two_cpu, its variables equal to the checkpoint's, read
#     back by `pstrain meta show` and restored through its saver by `pstrain meta check`; TF's
#     own SavedModels pass the same checker (a control).
set -euo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
check=$src/tests/tf_defs_check.py
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import google.protobuf' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "FAIL: no python3 with google.protobuf (Debian python3-protobuf; scripts/setup.sh installs it)"
  exit 1
fi
command -v protoc >/dev/null || { echo "FAIL: protoc missing (Debian protobuf-compiler)"; exit 1; }
tmp=$(mktemp -d /tmp/test_tf_defs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export PST_JOB_TOKEN_FILE=$tmp/token
"$bin/launcher/pstrain" token new "$tmp/token" >/dev/null

ckpts=()
train() { # model optimizer
  "$bin/worker/pstrain-worker" --model "$1" --optimizer "$2" --steps 2 --batch 4 --validation 0 \
    --threads 1 --checkpoint-dir "$tmp/$1" --quiet >"$tmp/$1.log" 2>&1 ||
    { echo "FAIL: pstrain-worker --model $1"; cat "$tmp/$1.log"; exit 1; }
  ckpts+=(--ckpt "$tmp/$1/model.ckpt-2")
}
train softmax sgd
train mlp adam
train simple_cnn momentum
train cnn5 rmsprop
train lenet5 adagrad

dist() { # name ps model flags...
  local name=$1 ps=$2 model=$3
  shift 3
  PST_JOB_DIR=$tmp/$name.job "$src/scripts/local_cluster.sh" --build "$bin" --ps "$ps" --workers 1 -- \
    --model "$model" --batch 4 --steps 3 --validation 0 --threads 1 --quiet \
    --checkpoint-dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 ||
    { echo "FAIL: distributed $name"; cat "$tmp/$name.log" "$tmp/$name.job"/*.log; exit 1; }
  ckpts+=(--ckpt "$tmp/$name/model.ckpt-3")
}
dist dist_cnn5 2 cnn5 --partition-min-bytes 1000
# This job's worker reads its examples from TFRecord files (zlib) pstrain data convert wrote.
"$bin/launcher/pstrain" data convert --from idx --to tfrecord --out "$tmp/records" \
  --compression zlib >/dev/null
dist dist_mlp 3 mlp --partition-min-bytes 100000 --optimizer momentum --placement greedy \
  --data-format tfrecord --data-dir "$tmp/records"
# A synchronous job: its .meta is the asynchronous twin of its graph (no PstSync* op, which
# TensorFlow lacks), with partitioned weights too.
dist dist_sync 2 mlp --mode sync --optimizer adam --partition-min-bytes 100000
if grep -q PstSync "$tmp/dist_sync/model.ckpt-3.meta"; then
  echo "FAIL: the sync job's .meta holds PstSync ops"; exit 1
fi
# The distributed checkpoints must hold partitioned variables, or the slice checks check nothing.
for d in dist_cnn5 dist_mlp dist_sync; do
  n=$("$bin/launcher/pstrain" ckpt show "$tmp/$d/model.ckpt-3" | grep -c '(sliced)' || true)
  [ "$n" -gt 0 ] || { echo "FAIL: $d wrote no partitioned variable"; exit 1; }
  echo "ok: $d holds $n partitioned variables"
done

"$bin/launcher/pstrain" meta export "$tmp/vgg16.meta" --model vgg16 >/dev/null
"$bin/launcher/pstrain" meta export "$tmp/vgg16_ps.meta" --model vgg16 --ps 2 \
  --partition-min-bytes 1000000 >/dev/null

"$py" "$check" "${ckpts[@]}" --meta "$tmp/vgg16.meta" --meta "$tmp/vgg16_ps.meta" \
  --max-meta-bytes 10000000 --self-test "$tmp/mlp/model.ckpt-2.meta"

for c in mlp/model.ckpt-2 dist_cnn5/model.ckpt-3 dist_sync/model.ckpt-3; do
  out=$("$bin/launcher/pstrain" meta check "$tmp/$c.meta" --checkpoint "$tmp/$c" --steps 0 2>&1) ||
    { echo "FAIL: restoring $c through its .meta's saver subgraph"; echo "$out"; exit 1; }
  grep -q '^restore: ok' <<<"$out" || { echo "FAIL: $c: no restore"; echo "$out"; exit 1; }
  echo "ok: $c restores through save/restore_all ($(grep '^restore' <<<"$out"))"
done

pstrain=$bin/launcher/pstrain
"$pstrain" export saved-model --checkpoint "$tmp/mlp" --export-dir "$tmp/serving" --model mlp
"$pstrain" export saved-model --checkpoint "$tmp/dist_mlp/model.ckpt-3" --export-dir "$tmp/serving" \
  --model mlp --version 7
[ -d "$tmp/serving/2" ] && [ -d "$tmp/serving/7" ] || { echo "FAIL: no version directories"; ls -la "$tmp/serving"; exit 1; }
[ "$(ls -A "$tmp/serving" | sort | xargs)" = "2 7" ] || { echo "FAIL: leftovers in the export dir"; ls -la "$tmp/serving"; exit 1; }
if out=$("$pstrain" export saved-model --checkpoint "$tmp/mlp" --export-dir "$tmp/serving" --model mlp 2>&1); then
  echo "FAIL: exporting version 2 again succeeded"; exit 1
fi
grep -q "$tmp/serving/2 already exists" <<<"$out" || { echo "FAIL: $out"; exit 1; }
out=$("$pstrain" meta show "$tmp/serving/2")
for want in "meta graph: tags \[serve\]" "signature serving_default (tensorflow/serving/predict)" \
    "input images: images:0 uint8 \[?,28,28,1\]" "output classes: classes:0 int64 \[?\]" \
    "output probabilities: probabilities:0 float \[?,10\]"; do
  grep -q "$want" <<<"$out" || { echo "FAIL: meta show lacks '$want'"; echo "$out"; exit 1; }
done
echo "ok: pstrain meta show reads the SavedModel back"
for v in 2 7; do
  out=$("$pstrain" meta check "$tmp/serving/$v/saved_model.pb" --checkpoint "$tmp/serving/$v/variables/variables" --steps 0 2>&1) || true
  grep -q '^restore: ok (6 variables' <<<"$out" || { echo "FAIL: SavedModel $v does not restore"; echo "$out"; exit 1; }
done
echo "ok: both SavedModels restore through their saver"
"$py" "$check" --saved-model "$tmp/serving/2" --saved-model "$tmp/serving/7" \
  --saved-model "$src/tests/data/tf/serving_half_plus_two_cpu" \
  --saved-model "$src/tests/data/tf/serving_saved_model_counter" \
  --compare-saved-model "$tmp/serving/2" "$src/tests/data/tf/serving_half_plus_two_cpu" \
  --compare-saved-model "$tmp/serving/7" "$src/tests/data/tf/serving_half_plus_two_cpu" \
  --values-match "$tmp/serving/2/variables/variables" "$tmp/mlp/model.ckpt-2"
