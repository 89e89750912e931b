#!/usr/bin/env bash
# The uvs demo: a userspace director balancing real TCP and UDP traffic
# across two real servers in DR mode (wrr, weights 3 and 1) on the
# namespace testbed. Exits non-zero unless the split matches the weights.
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
cleanup() { testbed/lab.sh down "$P"; rm -rf "$TMP"; }
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
