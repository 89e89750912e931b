#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the end-to-end tests that send
# real traffic through uvs between network namespaces. Needs root for the
# namespaces; under CI (CI set) a test that cannot build its lab fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[[ -x $HOME/.cargo/bin/cargo ]] && export PATH=$HOME/.cargo/bin:$PATH
# The testbed traffic tool is a workspace member the end-to-end tests run.
cargo build -p uvs-lab
# The default backend (auto: AF_XDP where the XDP program loads, as in CI).
cargo test --all-targets "$@"
# The end-to-end suite again on the other backends: batched AF_PACKET,
# and AF_PACKET with a TPACKET_V3 receive ring. Four tests at a time:
# most of a test's time is spent waiting (timers, failovers), and these
# passes leave out the tests that measure (their backend is their own).
UVS_IO=packet cargo test --test e2e "$@" -- --test-threads=4
UVS_IO=packet-ring cargo test --test e2e "$@" -- --test-threads=4
