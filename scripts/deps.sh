#!/usr/bin/env bash
# Installs what uvs's demo and tests need on a fresh Debian machine (root).
# Idempotent: only missing packages are installed.
set -euo pipefail
[[ $(id -u) -eq 0 ]] || { echo "deps.sh: run as root (sudo)" >&2; exit 1; }
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)         # ip netns, veth, bridge; nstat
have nstat || need+=(iproute2)
have nft || need+=(nftables)        # the cloud-VPC switch of the testbed
have ethtool || need+=(ethtool)     # the tests check that offloads stay on
have sysctl || need+=(procps)
have ping || need+=(iputils-ping)
have wrk || need+=(wrk)             # HTTP load through NAT in the tests
have curl || need+=(curl)           # scrapes --metrics in the tests (a real HTTP client)
have keepalived || need+=(keepalived) # proves the import tests' keepalived.conf files valid (keepalived -t)
have tmux || need+=(tmux)           # drives `uvs top` in a real terminal (tests/e2e/top.rs)
have systemd-analyze || need+=(systemd) # verifies dist/uvs.service (tests/cli/unit_file.rs)
have clang || need+=(clang)         # builds the XDP program (AF_XDP backend)
[[ -e /usr/include/bpf/bpf_helpers.h ]] || need+=(libbpf-dev)
have groff || need+=(groff-base)    # the tests render the man pages
have bird || need+=(bird2)          # BGP: the lab's router and the directors' speakers (tests/e2e/bgp.rs)
have dpkg-shlibdeps || need+=(dpkg-dev) # scripts/deb.sh: the package's Depends
if [[ ${#need[@]} -gt 0 ]]; then
  echo "deps.sh: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  [[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || { echo "deps.sh: cargo (Rust 1.95+) is required" >&2; exit 1; }
