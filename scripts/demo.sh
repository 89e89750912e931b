#!/usr/bin/env bash
# The uvs demo, in three acts on the namespace testbed.
#  1. A userspace director balancing real TCP and UDP traffic across two
#     real servers in DR mode (wrr, weights 3 and 1), over IPv4 and over
#     IPv6.
#  2. The same behind a cloud-VPC switch that drops spoofed sources:
#     `uvs probe` says DR cannot work, DR indeed fails (the switch counts
#     the drops), and TUN (-i) carries the same traffic.
#  3. NAT (-m) on a two-armed director: real servers that were not touched
#     at all (no VIP, no sysctls) behind it, ports mapped 80 -> 8080 and
#     53 -> 5353, the same 3:1 split, and the servers see the client's own
#     address.
# Exits non-zero unless every step does what it says.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
echo "== building"
cargo build --release --quiet
B=$PWD/target/release
VIP=198.18.0.100
VIP6=2001:2::100
P=uvsdemo$$
TMP=$(mktemp -d)
cleanup() {
  for l in "$P" "${P}v" "${P}n"; do testbed/lab.sh down "$l"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "== FAIL: $*" >&2; exit 1; }
wait_log() { # file text
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  cat "$1" >&2; fail "no '$2' in $1"
}
servers() { # lab: the traffic server on rs1 and rs2
  for i in 1 2; do
    ip netns exec "$1-rs$i" "$B/uvs-lab" server --name "rs$i" --tcp 80 --udp "$VIP:53" --udp "[$VIP6]:53" \
      &>"$TMP/$1-rs$i.log" &
  done
}
start_director() { # lab [interface...]: uvs director (default eth0); adm then talks to it
  local l=$1 ifs=() i
  shift
  for i in "${@:-eth0}"; do ifs+=(--interface "$i"); done
  SOCK=$TMP/$l.sock
  ip netns exec "$l-dir" "$B/uvs" director "${ifs[@]}" --socket "$SOCK" &>"$TMP/$l-director.log" &
  for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done
  [[ -S $SOCK ]] || { cat "$TMP/$l-director.log"; exit 1; }
  # Which packet I/O it chose (AF_XDP where its XDP program loads).
  for _ in $(seq 100); do grep -q "connection table" "$TMP/$l-director.log" && break; sleep 0.05; done
  grep "packet I/O" "$TMP/$l-director.log" || true
}
adm() { echo "# uvsadm $*"; "$B/uvsadm" --socket "$SOCK" "$@"; }
split_ok() { # client JSON [name1 name2]: 300 answers from rs1, 100 from rs2, no errors
  local a=${2:-rs1} b=${3:-rs2}
  [[ $1 == *"\"$a\":300"* && $1 == *"\"$b\":100"* && $1 == *'"errors":0'* ]]
}

echo "== lab $P: client, director, rs1, rs2 on one switch (198.18.0.0/24)"
testbed/lab.sh up "$P" 2
servers "$P"
start_director "$P"

echo "== configuring (ipvsadm syntax)"
adm -A -t $VIP:80 -s wrr
adm -a -t $VIP:80 -r 198.18.0.11 -g -w 3
adm -a -t $VIP:80 -r 198.18.0.12 -g -w 1
adm -A -u $VIP:53 -s wrr
adm -a -u $VIP:53 -r 198.18.0.11 -g -w 3
adm -a -u $VIP:53 -r 198.18.0.12 -g -w 1

echo "== client: 400 TCP connections and 400 UDP datagrams to $VIP"
tcp=$(ip netns exec "$P-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 400)
udp=$(ip netns exec "$P-cl" "$B/uvs-lab" udp-names --target $VIP:53 --count 400)
adm -Ln --stats
echo
echo "answers over TCP: $tcp"
echo "answers over UDP: $udp"
split_ok "$tcp" && split_ok "$udp" || fail "the split does not match weights 3:1"
echo "== PASS: both TCP and UDP split 300:100, matching weights 3:1"

echo "== the same over IPv6: [$VIP6], real servers 2001:2::11 and ::12 (VIP6 on their lo)"
for o in -t -u; do
  port=80; [[ $o == -u ]] && port=53
  adm -A $o "[$VIP6]:$port" -s wrr
  adm -a $o "[$VIP6]:$port" -r 2001:2::11 -g -w 3
  adm -a $o "[$VIP6]:$port" -r 2001:2::12 -g -w 1
done
tcp=$(ip netns exec "$P-cl" "$B/uvs-lab" tcp-names --target "[$VIP6]:80" --count 400)
udp=$(ip netns exec "$P-cl" "$B/uvs-lab" udp-names --target "[$VIP6]:53" --count 400)
adm -Ln -t "[$VIP6]:80"
echo "answers over TCP/IPv6: $tcp"
echo "answers over UDP/IPv6: $udp"
split_ok "$tcp" && split_ok "$udp" || fail "the IPv6 split does not match weights 3:1"
echo "== PASS: IPv6 TCP and UDP split 300:100 too"
testbed/lab.sh down "$P"

V=${P}v
echo
echo "== act 2, lab $V: the same network behind a cloud-VPC switch (port security)"
testbed/lab.sh up "$V" 2 --vpc
servers "$V"
for i in 1 2; do
  if ! testbed/lab.sh tunnel "$V" "rs$i" >/dev/null; then
    echo "# rs$i: no ipip module here; uvs decap does the decapsulation"
    ip netns exec "$V-rs$i" "$B/uvs" decap &>"$TMP/$V-decap$i.log" &
    wait_log "$TMP/$V-decap$i.log" "delivered through"
  fi
  ip netns exec "$V-rs$i" "$B/uvs" probe --responder &>"$TMP/$V-resp$i.log" &
  wait_log "$TMP/$V-resp$i.log" "responder ready"
done
echo "# uvs probe --to 198.18.0.11 --vip $VIP   (on the director, before configuring anything)"
ip netns exec "$V-dir" "$B/uvs" probe --to 198.18.0.11 --vip $VIP --method tun ||
  fail "the probe says TUN does not work"
if ip netns exec "$V-dir" "$B/uvs" probe --to 198.18.0.11 --vip $VIP --method dr >/dev/null; then
  fail "the probe says DR works behind the VPC switch"
fi
start_director "$V"

echo "== DR anyway: the switch drops what the director sends"
d0=$(testbed/lab.sh drops "$V")
adm -A -t $VIP:80 -s wrr
adm -a -t $VIP:80 -r 198.18.0.11 -g -w 3
adm -a -t $VIP:80 -r 198.18.0.12 -g -w 1
dr=$(ip netns exec "$V-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 2)
d1=$(testbed/lab.sh drops "$V")
echo "answers over TCP: $dr; switch drops $d0 -> $d1"
[[ $dr == *'"errors":2'* && $d1 -gt $d0 ]] || fail "DR was expected to fail at the switch"

echo "== TUN (-i): the same servers, same weights"
adm -A -u $VIP:53 -s wrr
adm -a -u $VIP:53 -r 198.18.0.11 -i -w 3
adm -a -u $VIP:53 -r 198.18.0.12 -i -w 1
# A new TCP service: the DR attempts' entries go with the old one (an
# edited real server keeps its connections' method, as in IPVS, and a
# client port reused from them would still go by DR). The UDP service
# keeps the VIP meanwhile, so it is not announced again.
adm -D -t $VIP:80
adm -A -t $VIP:80 -s wrr
adm -a -t $VIP:80 -r 198.18.0.11 -i -w 3
adm -a -t $VIP:80 -r 198.18.0.12 -i -w 1
tcp=$(ip netns exec "$V-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 400)
udp=$(ip netns exec "$V-cl" "$B/uvs-lab" udp-names --target $VIP:53 --count 400)
d2=$(testbed/lab.sh drops "$V")
adm -Ln
echo
echo "answers over TCP: $tcp"
echo "answers over UDP: $udp"
echo "switch drops during TUN: $((d2 - d1))"
split_ok "$tcp" && split_ok "$udp" || fail "TUN split is not 300:100"
[[ $d2 -eq $d1 ]] || fail "the switch dropped TUN traffic"
echo "== PASS: behind the VPC switch DR is dropped and TUN splits TCP and UDP 300:100"
testbed/lab.sh down "$V"

N=${P}n
echo
echo "== act 3, lab $N: a two-armed director for NAT (-m)"
echo "# clients on 198.18.0.0/24 (director eth0); nat1, nat2 on 198.18.2.0/24 behind"
echo "# the director's eth1 (198.18.2.1, their default gateway); nothing else is set on them"
testbed/lab.sh up "$N" 2 --nat
for i in 1 2; do
  ip netns exec "$N-nat$i" "$B/uvs-lab" server --name "nat$i" --tcp 8080 --udp 0.0.0.0:5353 &>"$TMP/$N-nat$i.log" &
done
echo "# uvs audit --mode nat --director 198.18.2.1   (on nat1)"
ip netns exec "$N-nat1" "$B/uvs" audit --mode nat --director 198.18.2.1 || [[ $? -eq 1 ]] ||
  fail "the audit finds nat1 unfit for NAT"
start_director "$N" eth0 eth1
adm -A -t $VIP:80 -s wrr
adm -a -t $VIP:80 -r 198.18.2.11:8080 -m -w 3
adm -a -t $VIP:80 -r 198.18.2.12:8080 -m -w 1
adm -A -u $VIP:53 -s wrr
adm -a -u $VIP:53 -r 198.18.2.11:5353 -m -w 3
adm -a -u $VIP:53 -r 198.18.2.12:5353 -m -w 1
tcp=$(ip netns exec "$N-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 400)
udp=$(ip netns exec "$N-cl" "$B/uvs-lab" udp-names --target $VIP:53 --count 400)
who=$(ip netns exec "$N-cl" "$B/uvs-lab" who --target $VIP:80)
down=$(ip netns exec "$N-cl" "$B/uvs-lab" download --target $VIP:80 --bytes 5000000)
adm -Ln --stats
echo
echo "who the server sees: $who"
echo "answers over TCP: $tcp"
echo "answers over UDP: $udp"
echo "5 MB download: $down"
peer=$(sed -n 's/.*"peer_seen":"\([^"]*\)".*/\1/p' <<<"$who")
local_addr=$(sed -n 's/.*"local":"\([^"]*\)".*/\1/p' <<<"$who")
[[ -n $peer && $peer == "$local_addr" ]] || fail "the real server does not see the client's address"
split_ok "$tcp" nat1 nat2 && split_ok "$udp" nat1 nat2 || fail "the NAT split is not 300:100"
[[ $down == *'"intact":true'* ]] || fail "the NAT download arrived damaged"
echo "== PASS: NAT maps VIP:80/53 to 8080/5353 on untouched servers, splits 3:1, keeps the client's address"
