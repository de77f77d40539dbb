#!/usr/bin/env bash
# Starts a private sshd for the ssh-backend tests: it listens on 127.0.0.1, 127.0.0.2 and
# 127.0.0.3 (stand-ins for three hosts) at PORT, accepts only DIR/id (a key made here), and
# writes DIR/sshd.pid. Exits 0 when the daemon answers, 3 when sshd is not installed or cannot
# run here (the caller skips with this message).
#
#   tests/ssh/start_sshd.sh DIR PORT        then: kill "$(cat DIR/sshd.pid)"
set -euo pipefail
dir="$1"
port="$2"
sshd=/usr/sbin/sshd
if [ ! -x "$sshd" ] || ! command -v ssh-keygen >/dev/null; then
  echo "skipped: openssh-server is not installed (apt-get install openssh-server)"
  exit 3
fi
# shellcheck source=netns_hosts.sh
. "$(dirname "$0")/netns_hosts.sh"
nh_ssh_keys "$dir"
nh_sshd_conf "$dir/sshd_config" "$dir/sshd.pid" "$dir" "$port" 127.0.0.1 127.0.0.2 127.0.0.3
echo "AcceptEnv LANG" >>"$dir/sshd_config"
if ! "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"; then
  echo "skipped: sshd did not start here ($(tail -1 "$dir/sshd.log" 2>/dev/null))"
  exit 3
fi
for _ in $(seq 50); do
  if ssh -p "$port" -i "$dir/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
       -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.2 true 2>/dev/null; then
    exit 0
  fi
  sleep 0.1
done
echo "skipped: sshd started but does not answer ($(tail -1 "$dir/sshd.log" 2>/dev/null))"
exit 3
