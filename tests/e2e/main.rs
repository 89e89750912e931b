//! The end-to-end tests: real TCP and UDP through `uvs director` between
//! the network namespaces of a testbed lab (testbed/lab.sh), one lab per
//! test. They need root: without it they skip, but fail under CI (`CI`
//! set). `scripts/test.sh` runs this binary once per packet I/O backend
//! (`UVS_IO`); docs/testing.md.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod bgp;
mod config;
mod dad6;
mod decap6;
mod dr;
mod dr6;
mod drain_server;
mod fwmark;
mod ha;
mod hardening;
mod health;
mod health_vip;
mod json;
mod keepalived;
mod kernel_sched;
mod lab6;
mod metrics;
mod nat;
mod persist;
mod persist6;
mod resolve6;
mod restart;
mod scaleout;
mod sched;
mod slow_start;
mod systemd;
mod tc_offload;
mod top;
mod trace;
mod tun;
mod tun6;
mod uvsadm;
mod vpc;
mod workers;
mod xdp;
