#!/usr/bin/env bash
# Prints uvs's performance figures (docs/performance.md): the data plane's
# logic cost per frame with the in-memory backend (cargo bench), then the
# side-by-side forwarding benchmark on the namespace lab (scripts/bench.py:
# direct, kernel forwarding, nftables DNAT, uvs DR/TUN/NAT; CPU per packet
# at a fixed rate and the peak rate, TCP throughput, new connections per
# second, memory per connection), as a table and as JSON.
# Speed targets are read from these figures, never from timed unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export DEBIAN_FRONTEND=noninteractive
need=()
command -v trafgen >/dev/null || need+=(netsniff-ng)   # the generator
command -v iperf3 >/dev/null || need+=(iperf3)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if [[ ${#need[@]} -gt 0 ]]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
cargo bench --quiet --bench forward
cargo build --release --quiet --workspace
exec python3 scripts/bench.py
