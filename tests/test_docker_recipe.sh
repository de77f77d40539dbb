#!/usr/bin/env bash
# shellcheck disable=SC2015  # "A && pass || fail" is safe: pass never fails
# deploy/docker/Dockerfile, checked without Docker (none runs here):
#   - the runtime stage's packages, with their dependencies, provide every shared library the
#     built pstrain-ps, pstrain-worker and pstrain link (ldd, dpkg -S, apt-cache depends);
#   - every file the Dockerfile copies exists (sources in the tree, programs in the build);
#   - the image's user is the uid the Kubernetes manifests run as, and the build goes through
#     scripts/setup.sh.
# Exits 77 (skipped) without dpkg/apt-cache or apt's package lists.
set -euo pipefail
src=${PST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PST_BINARY_DIR:-$src/build}
df=$src/deploy/docker/Dockerfile
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
command -v dpkg >/dev/null && command -v apt-cache >/dev/null && command -v ldd >/dev/null ||
  { echo "SKIP test_docker_recipe: needs dpkg, apt-cache and ldd (Debian)"; exit 77; }

# The runtime stage: everything after the last FROM.
runtime=$(awk '/^FROM /{buf=""} {buf = buf $0 "\n"} END {printf "%s", buf}' "$df")
grep -q '^FROM debian:12' <<<"$runtime" || fail "the runtime stage is not Debian 12"
# Its packages: the words after --no-install-recommends up to the next &&.
pkgs=$(tr '\n' ' ' <<<"$runtime" | sed 's/\\//g' | grep -o -- '--no-install-recommends[^&]*' |
  sed 's/--no-install-recommends//' | xargs)
[ -n "$pkgs" ] || fail "no apt-get install --no-install-recommends list in the runtime stage"
echo "runtime packages: $pkgs"
# shellcheck disable=SC2086  # a list of package names
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $pkgs 2>/dev/null | grep -v '^ ' | sort -u) ||
  { echo "SKIP test_docker_recipe: apt-cache knows none of the packages (run apt-get update)"; exit 77; }
for p in $pkgs; do grep -qx "$p" <<<"$closure" || fail "apt-cache does not know runtime package $p"; done
# debian:12-slim already has these (priority required).
base="libc6 libgcc-s1 libstdc++6 zlib1g"

programs="$bin/ps/pstrain-ps $bin/worker/pstrain-worker $bin/launcher/pstrain"
for b in $programs; do [ -x "$b" ] || fail "$b is not built"; done
# A sanitizer build (build-asan) also links the sanitizers' runtimes and what they need; the
# image is built without them.
owner() {
  local p
  p=$(dpkg -S "$(readlink -f "$1")" 2>/dev/null || dpkg -S "$1" 2>/dev/null || true)
  echo "${p%%:*}"
}
# shellcheck disable=SC2086  # a list of paths
libs=$(ldd $programs 2>/dev/null | awk '/=> \// {print $3}' | sort -u)
sanitizer=""
for lib in $libs; do
  [[ "$(basename "$lib")" =~ ^lib(asan|ubsan|lsan|tsan)\.so ]] && sanitizer+=" $(owner "$lib")"
done
if [ -n "$sanitizer" ]; then
  # gcc also links libatomic into sanitized programs.
  # shellcheck disable=SC2086  # a list of package names
  sanitizer=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances $sanitizer libatomic1 2>/dev/null | grep -v '^ ' | sort -u)
  echo "a sanitizer build: not counting $(tr "\n" " " <<<"$sanitizer")"
fi
missing=""
for lib in $libs; do
  pkg=$(owner "$lib")
  if [ -n "$pkg" ] && grep -qx "$pkg" <<<"$sanitizer"; then
    continue
  elif [ -z "$pkg" ]; then
    fail "no Debian package owns $lib"
  elif ! grep -qx "$pkg" <<<"$closure" && [[ " $base " != *" $pkg "* ]] &&
    [[ "$missing" != *" $pkg("* ]]; then
    missing+=" $pkg($(basename "$lib"))"
  fi
done
[ -z "$missing" ] && pass "the runtime packages provide every shared library the programs link" ||
  fail "libraries from packages the runtime stage does not install:$missing"

# Files it copies.
while read -r line; do
  [[ "$line" == COPY* ]] || continue
  read -r -a words <<<"${line//\\/}"
  from=""
  args=()
  for w in "${words[@]:1}"; do
    if [[ "$w" == --from=* ]]; then from=${w#--from=}; else args+=("$w"); fi
  done
  unset 'args[${#args[@]}-1]' # the destination
  for s in "${args[@]}"; do
    if [ -n "$from" ]; then
      # /src/build/X in the build stage = build/X of this tree's build
      rel=${s#/src/build/}
      [ -x "$bin/$rel" ] && pass "COPY --from=$from $s (built here as $bin/$rel)" || fail "COPY --from=$from $s: no $bin/$rel"
    elif [ "$s" != . ]; then
      [ -e "$src/$s" ] && pass "COPY $s" || fail "COPY $s: no such file in the tree"
    fi
  done
done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df")

grep -q 'scripts/setup.sh build' "$df" && pass "the build stage runs scripts/setup.sh" ||
  fail "the build stage does not run scripts/setup.sh"
uid=$(sed -n 's/^USER \([0-9]*\).*/\1/p' "$df")
for m in "$src"/deploy/kubernetes/*.yaml; do
  while read -r u; do
    [ "$u" = "$uid" ] && pass "$(basename "$m"): runAsUser $u is the image's USER" ||
      fail "$(basename "$m"): runAsUser $u, but the image's USER is '$uid'"
  done < <(sed -n 's/^ *runAsUser: *\([0-9]*\).*/\1/p' "$m")
done
grep -q '^\.git$' "$src/.dockerignore" && grep -q '^build\*/$' "$src/.dockerignore" &&
  pass ".dockerignore leaves out .git and the build directories" || fail ".dockerignore"

if [ "$failures" -gt 0 ]; then
  echo "test_docker_recipe: $failures failures"
  exit 1
fi
echo "test_docker_recipe: all checks passed"
