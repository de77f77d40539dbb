# Sourced by the tests that stand network namespaces in for hosts (test_netns, test_mpi_hosts)
# and by start_sshd.sh. The caller sets:
#   nh_id     a number of its own ($$ % 100000)
#   nh_pfx    a short prefix: namespace "$nh_pfx$nh_id-HOST", bridge "${nh_pfx}br$nh_id", the
#             root end of HOST's veth pair "$nh_pfx$nh_id$HOST" (names of at most 15 bytes)
#   nh_hosts  the hosts' names ("h0 h1")
#   addr      an associative array host -> address (after nh_pick_net: "$net.N")

# nh_ns HOST: the host's namespace.
nh_ns() { echo "$nh_pfx$nh_id-$1"; }

# nh_pick_net: sets net to a private /24 ("10.x.y") nobody on this machine uses; 1 if none.
nh_pick_net() {
  local cand _
  net=""
  for _ in $(seq 50); do
    cand=10.$((200 + RANDOM % 50)).$((RANDOM % 250 + 1))
    ip -4 addr | grep -q " $cand\." || ip -4 route | grep -q "^$cand\." || { net=$cand; return 0; }
  done
  return 1
}

# nh_create ERRFILE: the bridge (address $net.1) and, per host, a namespace with eth0 at
# ${addr[HOST]}/24 on the bridge. Prints what failed and returns 1 when this machine cannot.
nh_create() {
  local err=$1 h ns br=${nh_pfx}br$nh_id
  ip link add "$br" type bridge 2>"$err" || { echo "cannot create a bridge: $(cat "$err")"; return 1; }
  ip addr add "$net.1/24" dev "$br"
  ip link set "$br" up
  for h in $nh_hosts; do
    ns=$(nh_ns "$h")
    ip netns add "$ns" 2>"$err" || { echo "cannot create a network namespace: $(cat "$err")"; return 1; }
    ip link add "$nh_pfx$nh_id$h" type veth peer name eth0 netns "$ns" 2>"$err" ||
      { echo "cannot create a veth pair: $(cat "$err")"; return 1; }
    ip link set "$nh_pfx$nh_id$h" master "$br" up
    ip -n "$ns" addr add "${addr[$h]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
}

# nh_destroy: ends every process of the hosts' namespaces (their sshds and whatever those
# started), then removes the namespaces and the bridge.
nh_destroy() {
  local h ns p
  for h in $nh_hosts; do
    ns=$(nh_ns "$h")
    ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    sleep 0.2
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "${nh_pfx}br$nh_id" 2>/dev/null
  return 0
}

# nh_ssh_keys DIR: a host key and a client key (DIR/id) that every sshd of DIR accepts.
nh_ssh_keys() {
  mkdir -p "$1" /run/sshd 2>/dev/null || true
  chmod 700 "$1"
  [ -f "$1/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$1/host_key"
  [ -f "$1/id" ] || ssh-keygen -q -t ed25519 -N '' -f "$1/id"
  cp "$1/id.pub" "$1/authorized_keys"
  chmod 600 "$1/authorized_keys"
}

# nh_sshd_conf CONF PIDFILE KEYDIR PORT ADDRESS...: writes CONF, an sshd on PORT at the
# addresses that accepts KEYDIR/id only (nh_ssh_keys) and writes PIDFILE; append more lines after.
nh_sshd_conf() {
  local conf=$1 pid=$2 d=$3 port=$4 a
  shift 4
  {
    echo "Port $port"
    for a in "$@"; do echo "ListenAddress $a"; done
    cat <<CONF
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile $pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
CONF
  } >"$conf"
}
