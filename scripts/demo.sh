#!/usr/bin/env bash
# The uvs demo, in two acts on the namespace testbed.
#  1. A userspace director balancing real TCP and UDP traffic across two
#     real servers in DR mode (wrr, weights 3 and 1).
#  2. The same behind a cloud-VPC switch that drops spoofed sources:
#     `uvs probe` says DR cannot work, DR indeed fails (the switch counts
#     the drops), and TUN (-i) carries the same traffic.
# Exits non-zero unless every step does what it says.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
echo "== building"
cargo build --release --quiet
B=$PWD/target/release
VIP=198.18.0.100
P=uvsdemo$$
TMP=$(mktemp -d)
cleanup() { testbed/lab.sh down "$P"; testbed/lab.sh down "${P}v"; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== lab $P: client, director, rs1, rs2 on one switch (198.18.0.0/24)"
testbed/lab.sh up "$P" 2
for i in 1 2; do
  ip netns exec "$P-rs$i" "$B/uvs-lab" server --name "rs$i" --tcp 80 --udp "$VIP:53" &>"$TMP/rs$i.log" &
done
ip netns exec "$P-dir" "$B/uvs" director --interface eth0 --socket "$TMP/uvs.sock" &>"$TMP/director.log" &
for _ in $(seq 100); do [[ -S $TMP/uvs.sock ]] && break; sleep 0.05; done
[[ -S $TMP/uvs.sock ]] || { cat "$TMP/director.log"; exit 1; }
adm() { echo "# uvsadm $*"; "$B/uvsadm" --socket "$TMP/uvs.sock" "$@"; }

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
ok=1
for r in "$tcp" "$udp"; do
  [[ $r == *'"rs1":300'* && $r == *'"rs2":100'* && $r == *'"errors":0'* ]] || ok=0
done
if [[ $ok == 1 ]]; then
  echo "== PASS: both TCP and UDP split 300:100, matching weights 3:1"
else
  echo "== FAIL: the split does not match weights 3:1" >&2
  exit 1
fi
testbed/lab.sh down "$P"

V=${P}v
fail() { echo "== FAIL: $*" >&2; exit 1; }
wait_log() { # file text
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  cat "$1" >&2; fail "no '$2' in $1"
}
echo
echo "== act 2, lab $V: the same network behind a cloud-VPC switch (port security)"
testbed/lab.sh up "$V" 2 --vpc
for i in 1 2; do
  ip netns exec "$V-rs$i" "$B/uvs-lab" server --name "rs$i" --tcp 80 --udp "$VIP:53" &>"$TMP/v-rs$i.log" &
  if ! testbed/lab.sh tunnel "$V" "rs$i" >/dev/null; then
    echo "# rs$i: no ipip module here; uvs decap does the decapsulation"
    ip netns exec "$V-rs$i" "$B/uvs" decap &>"$TMP/v-decap$i.log" &
    wait_log "$TMP/v-decap$i.log" "delivered through"
  fi
  ip netns exec "$V-rs$i" "$B/uvs" probe --responder &>"$TMP/v-resp$i.log" &
  wait_log "$TMP/v-resp$i.log" "responder ready"
done
echo "# uvs probe --to 198.18.0.11 --vip $VIP   (on the director, before configuring anything)"
ip netns exec "$V-dir" "$B/uvs" probe --to 198.18.0.11 --vip $VIP --method tun ||
  fail "the probe says TUN does not work"
if ip netns exec "$V-dir" "$B/uvs" probe --to 198.18.0.11 --vip $VIP --method dr >/dev/null; then
  fail "the probe says DR works behind the VPC switch"
fi
ip netns exec "$V-dir" "$B/uvs" director --interface eth0 --socket "$TMP/v.sock" &>"$TMP/v-director.log" &
for _ in $(seq 100); do [[ -S $TMP/v.sock ]] && break; sleep 0.05; done
[[ -S $TMP/v.sock ]] || { cat "$TMP/v-director.log"; exit 1; }
vadm() { echo "# uvsadm $*"; "$B/uvsadm" --socket "$TMP/v.sock" "$@"; }

echo "== DR anyway: the switch drops what the director sends"
d0=$(testbed/lab.sh drops "$V")
vadm -A -t $VIP:80 -s wrr
vadm -a -t $VIP:80 -r 198.18.0.11 -g -w 3
vadm -a -t $VIP:80 -r 198.18.0.12 -g -w 1
dr=$(ip netns exec "$V-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 2)
d1=$(testbed/lab.sh drops "$V")
echo "answers over TCP: $dr; switch drops $d0 -> $d1"
[[ $dr == *'"errors":2'* && $d1 -gt $d0 ]] || fail "DR was expected to fail at the switch"

echo "== TUN (-i): the same servers, same weights"
vadm -e -t $VIP:80 -r 198.18.0.11 -i -w 3
vadm -e -t $VIP:80 -r 198.18.0.12 -i -w 1
vadm -A -u $VIP:53 -s wrr
vadm -a -u $VIP:53 -r 198.18.0.11 -i -w 3
vadm -a -u $VIP:53 -r 198.18.0.12 -i -w 1
tcp=$(ip netns exec "$V-cl" "$B/uvs-lab" tcp-names --target $VIP:80 --count 400)
udp=$(ip netns exec "$V-cl" "$B/uvs-lab" udp-names --target $VIP:53 --count 400)
d2=$(testbed/lab.sh drops "$V")
vadm -Ln
echo
echo "answers over TCP: $tcp"
echo "answers over UDP: $udp"
echo "switch drops during TUN: $((d2 - d1))"
for r in "$tcp" "$udp"; do
  [[ $r == *'"rs1":300'* && $r == *'"rs2":100'* && $r == *'"errors":0'* ]] || fail "TUN split is not 300:100"
done
[[ $d2 -eq $d1 ]] || fail "the switch dropped TUN traffic"
echo "== PASS: behind the VPC switch DR is dropped and TUN splits TCP and UDP 300:100"
