#!/usr/bin/env bash
# The uvs namespace testbed: a client, a director and N real servers on one
# switch (a Linux bridge in its own namespace), all in 198.18.0.0/24.
#
#   testbed/lab.sh up PREFIX [N] [--routed] [--vpc] [--nat] [--two-directors] [--witness]
#                                    build the lab (N real servers, default 2);
#                                    --routed adds a router (PREFIX-rt) and a real
#                                    server in another subnet (PREFIX-rr1,
#                                    198.18.1.11), reachable only through it (TUN);
#                                    --vpc makes the switch behave like a cloud
#                                    VPC's port security (see vpc() below);
#                                    --nat makes the director two-armed: a second
#                                    network 198.18.2.0/24 on its eth1 (198.18.2.1)
#                                    with N untouched real servers PREFIX-nat1..N
#                                    (198.18.2.11..) whose default gateway it is
#                                    --two-directors adds a second director,
#                                    PREFIX-dir2 (198.18.0.3), for failover;
#                                    --witness a third host, PREFIX-wit
#                                    (198.18.0.4), for `uvs witness`
#   testbed/lab.sh tunnel PREFIX NODE
#                                    give NODE the kernel's IP-in-IP decapsulator
#                                    (tunl0, VIP on it) if this kernel has ipip;
#                                    prints "kernel", or "none" and exits 3, in
#                                    which case the caller runs `uvs decap` there
#   testbed/lab.sh drops PREFIX      packets the VPC switch dropped as spoofed
#   testbed/lab.sh down PREFIX       kill every process in it and delete it
#   testbed/lab.sh list PREFIX       the namespaces of a lab
#
# Namespaces are PREFIX-sw, PREFIX-cl, PREFIX-dir, PREFIX-rs1..N; inside each
# node the interface is eth0. Real servers are set up for DR: the VIP as /32
# on lo, arp_ignore=1, arp_announce=2. Every host also has IPv6: the twin of
# its IPv4 address in 2001:2::/48 (v6 below), added with nodad, and real
# servers have the IPv6 VIP as /128 on lo (kept when lo goes down); see
# testbed/README.md for the plan. Nothing here touches the host's own
# network namespace.
set -euo pipefail

VIP=${UVS_VIP:-198.18.0.100}
VIP6=${UVS_VIP6:-2001:2::100}
NET=198.18.0
CLIENT_IP=$NET.10
NAT_NET=198.18.2
DIRECTOR_IP=$NET.2

die() { echo "lab.sh: $*" >&2; exit 1; }

rs_ip() { echo "$NET.$((10 + $1))"; }

# The IPv6 twin of a lab address: 198.18.N.H is 2001:2:0:N::H (the same
# digits, read as hex), so 198.18.0.11 is 2001:2::11.
v6() {
  local n h
  IFS=. read -r _ _ n h <<<"$1"
  if [[ $n == 0 ]]; then echo "2001:2::$h"; else echo "2001:2:0:$n::$h"; fi
}

# A new host namespace: IPv6 on, but quiet and quick. No DAD (addresses
# are usable at once, none is ever tentative) and no router solicitations;
# interfaces made later inherit conf/default.
ns_add() { # ns
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
  ip -n "$1" link set lo up
}

# An address of both families on a node's interface.
addr_add() { # ns ip dev
  ip -n "$1" addr add "$2/24" dev "$3"
  ip -n "$1" addr add "$(v6 "$2")/64" dev "$3" nodad
}

# The DR real server's VIPs on lo, and the settings that go with them.
vips_on_lo() { # ns
  ip -n "$1" addr add "$VIP/32" dev lo
  ip -n "$1" addr add "$VIP6/128" dev lo
  ip netns exec "$1" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
    net.ipv6.conf.lo.keep_addr_on_down=1
}

node_up() { # ns ip [bridge]
  local ns=$1 ip=$2 port="p-${1##*-}" br=${3:-br0}
  ns_add "$ns"
  ip -n "$ns" link add eth0 type veth peer name "$port" netns "$SW"
  ip -n "$SW" link set "$port" master "$br" up
  addr_add "$ns" "$ip" eth0
  ip -n "$ns" link set eth0 up
}

routed() { # p
  local p=$1 rt=$1-rt rr=$1-rr1
  node_up "$rt" "$NET.1"
  ip netns exec "$rt" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ns_add "$rr"
  ip -n "$rt" link add eth1 type veth peer name eth0 netns "$rr"
  addr_add "$rt" 198.18.1.1 eth1
  ip -n "$rt" link set eth1 up
  addr_add "$rr" 198.18.1.11 eth0
  ip -n "$rr" link set eth0 up
  ip -n "$rr" route add default via 198.18.1.1
  ip -n "$rr" -6 route add default via "$(v6 198.18.1.1)"
  vips_on_lo "$rr"
  for ns in "$p-cl" "$p-dir"; do
    ip -n "$ns" route add 198.18.1.0/24 via "$NET.1"
    ip -n "$ns" -6 route add "$(v6 198.18.1.0)/64" via "$(v6 "$NET.1")"
  done
}

# The server side of a two-armed NAT director: a second bridge, the
# director's eth1 on it, and real servers that need nothing but a default
# route via the director (no VIP, no sysctls: what NAT is for).
nat() { # p n
  local p=$1 n=$2 i
  ip -n "$SW" link add br1 type bridge
  ip -n "$SW" link set br1 up
  ip -n "$p-dir" link add eth1 type veth peer name p-dir1 netns "$SW"
  ip -n "$SW" link set p-dir1 master br1 up
  addr_add "$p-dir" "$NAT_NET.1" eth1
  ip -n "$p-dir" link set eth1 up
  for i in $(seq 1 "$n"); do
    node_up "$p-nat$i" "$NAT_NET.$((10 + i))" br1
    ip -n "$p-nat$i" route add default via "$NAT_NET.1"
    ip -n "$p-nat$i" -6 route add default via "$(v6 "$NAT_NET.1")"
  done
}

# Cloud port security on the switch: a frame is admitted only if its
# (switch port, source MAC, source address) triple belongs to the node
# behind that port, as a VPC's virtual switch does: its IPv4 address for
# IPv4 and ARP, its IPv6 addresses (global and link-local: neighbour
# discovery and MLD speak from the latter) for IPv6. The VIPs are
# "allowed address pairs" on the director's port (it answers ARP and
# neighbour solicitations for them) and on each real server's (they answer
# clients from them). The router's port stands for the cloud's own gateway
# and is trusted. DR frames (client source address from the director's
# MAC) are dropped and counted; tunnels from the director's own address
# (IP-in-IP, IPv6 in IPv6) pass.
vpc() {
  local p=$1 sw=$1-sw ns port mac ip ip6 ips="" ip6s="" macs="" trusted='"-"'
  for ns in $(list "$p"); do
    port="p-${ns##*-}"
    case ${ns##*-} in sw|rr1) continue ;; nat*) trusted+=", \"$port\""; continue ;; esac
    if [[ ${ns##*-} == rt ]]; then trusted+=", \"$port\""; continue; fi
    mac=$(ip netns exec "$ns" cat /sys/class/net/eth0/address)
    ip=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}')
    macs+="\"$port\" . $mac, "
    ips+="\"$port\" . $mac . $ip, "
    for ip6 in $(ip -n "$ns" -6 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]}'); do
      ip6s+="\"$port\" . $mac . $ip6, "
    done
    case ${ns##*-} in dir|rs*) ips+="\"$port\" . $mac . $VIP, "; ip6s+="\"$port\" . $mac . $VIP6, " ;; esac
  done
  ip -n "$sw" link show p-dir1 >/dev/null 2>&1 && trusted+=', "p-dir1"'
  ip netns exec "$sw" nft -f - <<EOF
table bridge portsec {
  counter spoofed { }
  set trusted { type ifname; elements = { $trusted } }
  set mac_ok { type ifname . ether_addr; elements = { ${macs%, } } }
  set ip_ok { type ifname . ether_addr . ipv4_addr; elements = { ${ips%, } } }
  set ip6_ok { type ifname . ether_addr . ipv6_addr; elements = { ${ip6s%, } } }
  chain pre {
    type filter hook prerouting priority -200; policy accept;
    iifname @trusted accept
    iifname . ether saddr != @mac_ok counter name "spoofed" drop
    ether type ip iifname . ether saddr . ip saddr != @ip_ok counter name "spoofed" drop
    ether type arp iifname . ether saddr . arp saddr ip != @ip_ok counter name "spoofed" drop
    ether type ip6 iifname . ether saddr . ip6 saddr != @ip6_ok counter name "spoofed" drop
  }
}
EOF
}

drops() {
  ip netns exec "$1-sw" nft list counter bridge portsec spoofed >/dev/null 2>&1 ||
    die "lab $1 has no VPC switch (build it with --vpc)"
  ip netns exec "$1-sw" nft list counter bridge portsec spoofed |
    awk '/packets/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }'
}

# The kernel's decapsulator when this kernel has ipip: tunl0 (created by the
# module in every namespace) up, the VIP moved onto it, rp_filter loose.
tunnel() {
  local ns=$1-$2
  ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no namespace $ns"
  if ! ip -n "$ns" link show tunl0 >/dev/null 2>&1; then
    ip -n "$ns" link add name tunl0 type ipip >/dev/null 2>&1 || { echo none; exit 3; }
  fi
  ip -n "$ns" link set tunl0 up
  ip -n "$ns" addr del "$VIP/32" dev lo 2>/dev/null || true
  ip -n "$ns" addr add "$VIP/32" dev tunl0
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.tunl0.rp_filter=2 net.ipv4.conf.all.rp_filter=0
  echo kernel
}

up() {
  local p=$1 n=${2:-2} opt routed=0 vpc=0 nat=0 first=3
  [[ $n == --* ]] && { n=2; first=2; }
  [[ $p =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad prefix '$p'"
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 50 ]] || die "bad server count '$n'"
  if ip netns list | awk '{print $1}' | grep -q "^$p-"; then die "a lab named $p exists"; fi
  SW=$p-sw
  ip netns add "$SW"
  # The switch is no host: IPv6 stays off there (its bridge would solicit).
  ip netns exec "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$SW" link set lo up
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  node_up "$p-cl" "$CLIENT_IP"
  node_up "$p-dir" "$DIRECTOR_IP"
  for i in $(seq 1 "$n"); do
    local ns=$p-rs$i
    node_up "$ns" "$(rs_ip "$i")"
    vips_on_lo "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
  done
  for opt in "${@:$first}"; do
    case $opt in
      --routed) routed=1 ;;
      --vpc) vpc=1 ;;
      --nat) nat=1 ;;
      --two-directors) node_up "$p-dir2" "$NET.3" ;;
      --witness) node_up "$p-wit" "$NET.4" ;;
      *) die "unknown option '$opt'" ;;
    esac
  done
  [[ $routed -eq 1 ]] && routed "$p"
  [[ $nat -eq 1 ]] && nat "$p" "$n"
  [[ $vpc -eq 1 ]] && vpc "$p"
  return 0
}

list() {
  ip netns list | awk '{print $1}' | grep "^$1-" || true
}

down() {
  local p=$1 ns
  [[ $p =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad prefix '$p'"
  for ns in $(list "$p"); do
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n $pids ]] && kill $pids 2>/dev/null || true
  done
  sleep 0.2
  for ns in $(list "$p"); do
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

cmd=${1:-}
case $cmd in
  up) shift; [[ $# -ge 1 ]] || die "usage: lab.sh up PREFIX [N] [--routed] [--vpc] [--nat]"; up "$@" || { down "$1"; exit 1; } ;;
  tunnel) shift; [[ $# -eq 2 ]] || die "usage: lab.sh tunnel PREFIX NODE"; tunnel "$@" ;;
  drops) shift; [[ $# -eq 1 ]] || die "usage: lab.sh drops PREFIX"; drops "$1" ;;
  down) shift; [[ $# -eq 1 ]] || die "usage: lab.sh down PREFIX"; down "$1" ;;
  list) shift; list "$1" ;;
  *) die "usage: lab.sh up PREFIX [N] [--routed] [--vpc] [--nat] | tunnel PREFIX NODE | drops PREFIX | down PREFIX | list PREFIX" ;;
esac
