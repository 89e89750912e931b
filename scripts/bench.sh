#!/usr/bin/env bash
# Prints uvs's performance figures (docs/performance.md): the data plane's
# logic cost per frame with the in-memory backend (cargo bench), then the
# side-by-side forwarding benchmark on the namespace lab (scripts/bench.py:
# direct, kernel forwarding, nftables DNAT, the XDP floor, uvs with the
# default flags and DR/TUN/NAT on each backend; CPU per packet at a fixed
# rate and the peak rate for long-lived and new flows, TCP throughput, new
# connections per second, nginx + wrk, memory per connection), as a table
# and as JSON.
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
command -v nginx >/dev/null || need+=(nginx)           # the web row's server (Debian's)
command -v wrk >/dev/null || need+=(wrk)               # and its clients
if [[ ${#need[@]} -gt 0 ]]; then
  # Installing nginx would start the system's nginx on port 80 of this
  # host: a policy-rc.d that refuses service starts (unless one is there)
  # keeps it stopped; the bench runs its own in the lab.
  policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [[ -z $policy ]] || { rm -f "$policy"; trap - EXIT; }
fi
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
cargo bench --quiet --bench forward
cargo build --release --quiet --workspace
exec python3 scripts/bench.py
