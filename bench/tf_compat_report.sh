#!/bin/sh
# TensorFlow graph compatibility report: for every graph under DIR (each `*.meta` file, or a
# SavedModel's `saved_model.pb`), `pstrain meta check` imports it, restores the checkpoint next
# to it when there is one (PREFIX.index beside PREFIX.meta, or any single *.index in the folder)
# and runs training steps on synthetic feeds matching its placeholders. Prints a table (graph,
# ops missing, import, restore, train step) and a summary line whose numbers are pass counts.
#
#     bench/tf_compat_report.sh DIR [PSTRAIN] [STEPS]
set -u
dir=${1:?usage: tf_compat_report.sh DIR [PSTRAIN] [STEPS]}
here=$(cd "$(dirname "$0")/.." && pwd)
pstrain=${2:-$here/build/launcher/pstrain}
steps=${3:-1}
[ -x "$pstrain" ] || { echo "no pstrain binary at $pstrain (build first)" >&2; exit 2; }
pstrain=$(cd "$(dirname "$pstrain")" && pwd)/$(basename "$pstrain") # each check runs elsewhere
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
graphs=$(find "$dir" \( -name '*.meta' -o -name saved_model.pb \) | sort)
n=0; n_import=0; n_ckpt=0; n_restore=0; n_train=0
printf '| graph | ops missing | import | restore | train step |\n| --- | --- | --- | --- | --- |\n'
for g in $graphs; do
    n=$((n + 1))
    folder=$(dirname "$g")
    name=$(basename "$folder")/$(basename "$g")
    prefix=""
    case "$g" in *.meta) [ -f "${g%.meta}.index" ] && prefix=${g%.meta} ;; esac
    if [ -z "$prefix" ]; then
        idx=$(find "$folder" -maxdepth 1 -name '*.index' | head -n 2)
        [ "$(printf '%s\n' "$idx" | grep -c .)" = 1 ] && prefix=${idx%.index}
    fi
    out=$tmp/out
    # Each graph in its own process with a time limit: one crash or hang cannot end the report.
    if [ -n "$prefix" ]; then
        n_ckpt=$((n_ckpt + 1))
        (cd "$tmp" && timeout 300 "$pstrain" meta check "$g" --checkpoint "$prefix" --steps "$steps") >"$out" 2>&1
    else
        (cd "$tmp" && timeout 300 "$pstrain" meta check "$g" --steps "$steps") >"$out" 2>&1
    fi
    rc=$?
    field() { sed -n "s/^$1: //p" "$out" | head -n 1 | cut -c1-160 | tr '|' '/'; }
    missing=$(field "missing ops")
    imp=$(field import); res=$(field restore); tr_=$(field train_step)
    [ -n "$imp" ] || imp="FAIL (exit $rc) $(tail -n 1 "$out" | cut -c1-120 | tr '|' '/')"
    case "$imp" in ok*) n_import=$((n_import + 1)) ;; esac
    case "$res" in ok*) n_restore=$((n_restore + 1)) ;; esac
    case "$tr_" in ok*) n_train=$((n_train + 1)) ;; esac
    printf '| %s | %s | %s | %s | %s |\n' "$name" "${missing:-?}" "$imp" "${res:--}" "${tr_:--}"
done
echo
echo "summary: import $n_import/$n, restore $n_restore/$n_ckpt, train step $n_train/$n"
