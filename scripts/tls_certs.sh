#!/usr/bin/env bash
# Creates a job's certificate authority and one certificate per task for mutual TLS.
#
#   scripts/tls_certs.sh DIR NAME=HOST[,HOST...] [NAME=HOST...]
#
# DIR/ca.crt and DIR/ca.key are the job's CA (made once, reused on later runs; keep ca.key
# private). For each NAME, DIR/NAME/ holds what that task gives to --tls-dir: ca.crt, task.crt
# (signed by the CA, valid as server and client, with every HOST as an IP or DNS subject
# alternative name) and task.key (mode 0600). Example for two machines:
#
#   scripts/tls_certs.sh certs ps0=10.0.0.1 worker0=10.0.0.2,worker0.example.org
#   pstrain-ps --cluster c.json --task 0 --tls-dir certs/ps0
#
# Needs the openssl command (Debian package openssl).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "tls_certs.sh: needs openssl (apt-get install openssl)" >&2; exit 2; }
dir="$1"
shift
umask 077
mkdir -p "$dir"
if [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=pstrain job CA $(date +%s)" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
for spec in "$@"; do
  name="${spec%%=*}"
  hosts="${spec#*=}"
  if [ -z "$name" ] || [ "$name" = "$spec" ] || [ -z "$hosts" ]; then
    echo "tls_certs.sh: '$spec' is not NAME=HOST[,HOST...]" >&2
    exit 2
  fi
  case "$name" in *[!A-Za-z0-9_.-]*) echo "tls_certs.sh: bad task name '$name'" >&2; exit 2 ;; esac
  san=""
  IFS=',' read -ra hs <<<"$hosts"
  for h in "${hs[@]}"; do
    h="${h#[}"; h="${h%]}"
    if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
  done
  san="${san%,}"
  out="$dir/$name"
  mkdir -p "$out"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$out/task.key" -out "$out/task.csr" 2>/dev/null
  ext="$out/ext.cnf"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >"$ext"
  openssl x509 -req -in "$out/task.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -extfile "$ext" -out "$out/task.crt" 2>/dev/null
  rm -f "$out/task.csr" "$ext"
  cp "$dir/ca.crt" "$out/ca.crt"
  chmod 600 "$out/task.key"
  echo "$out: task.crt for $san"
done
