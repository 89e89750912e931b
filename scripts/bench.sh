#!/usr/bin/env bash
# Prints uvs's performance figures: the data plane's logic cost per frame
# (in-memory backend), then TCP throughput through uvs (DR) next to the same
# client talking to a real server directly, in one lab, as a ratio, and
# TCP upload and download through a two-armed NAT director.
# Speed targets are read from these figures, never from timed unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
cargo bench --quiet --bench forward
cargo build --release --quiet
B=$PWD/target/release
P=uvsbench$$
TMP=$(mktemp -d)
trap 'testbed/lab.sh down "$P"; testbed/lab.sh down "${P}n"; rm -rf "$TMP"' EXIT
testbed/lab.sh up "$P" 1
ip netns exec "$P-rs1" "$B/uvs-lab" server --name rs1 --tcp 80 &>/dev/null &
ip netns exec "$P-dir" "$B/uvs" director --interface eth0 --socket "$TMP/s" &>"$TMP/dir.log" &
for _ in $(seq 100); do [[ -S $TMP/s ]] && break; sleep 0.05; done
"$B/uvsadm" --socket "$TMP/s" -A -t 198.18.0.100:80 -s rr
"$B/uvsadm" --socket "$TMP/s" -a -t 198.18.0.100:80 -r 198.18.0.11 -g
sleep 0.3
up() { ip netns exec "$P-cl" "$B/uvs-lab" upload --target "$1:80" --bytes 200000000; }
rate() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["intact"], d; print("%.2f" % (d["sent"]*8/d["seconds"]/1e9))' "$1"; }
direct=$(rate "$(up 198.18.0.11)")
via=$(rate "$(up 198.18.0.100)")
echo "TCP upload 200 MB, client offloads on (2 cores shared by client, director, server):"
echo "  direct to the real server : $direct Gbit/s"
echo "  through uvs (DR, AF_PACKET): $via Gbit/s"
python3 -c "print('  ratio uvs/direct          : %.2f' % ($via/$direct))"
"$B/uvs" status --socket "$TMP/s" | grep -E 'forwarded|gso|csum|tx_errors'
testbed/lab.sh down "$P"

N=${P}n
testbed/lab.sh up "$N" 1 --nat
ip netns exec "$N-nat1" "$B/uvs-lab" server --name nat1 --tcp 8080 &>/dev/null &
ip netns exec "$N-dir" "$B/uvs" director --interface eth0 --interface eth1 --socket "$TMP/n" &>"$TMP/dirn.log" &
for _ in $(seq 100); do [[ -S $TMP/n ]] && break; sleep 0.05; done
"$B/uvsadm" --socket "$TMP/n" -A -t 198.18.0.100:80 -s rr
"$B/uvsadm" --socket "$TMP/n" -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
sleep 0.3
down_rate() {
  ip netns exec "$N-cl" "$B/uvs-lab" download --target 198.18.0.100:80 --bytes 200000000 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["intact"], d; print("%.2f" % (d["received"]*8/d["seconds"]/1e9))'
}
nat_up=$(rate "$(ip netns exec "$N-cl" "$B/uvs-lab" upload --target 198.18.0.100:80 --bytes 200000000)")
nat_down=$(down_rate)
echo "TCP 200 MB through uvs NAT (two-armed, both directions translated):"
echo "  upload   : $nat_up Gbit/s"
echo "  download : $nat_down Gbit/s"
"$B/uvs" status --socket "$TMP/n" | grep -E 'forwarded|nat_replies|gso|csum|tx_errors'
