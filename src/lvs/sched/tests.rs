//! The schedulers run as a worker runs them, against the kernel's
//! sequences and formulas.

use super::*;
use crate::lvs::conn::ConnKey;
use crate::lvs::service::{Forward, Protocol, SchedFlags};
use crate::lvs::stats::DestState;
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub(super) const C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

pub(super) fn dests(weights: &[u32]) -> Vec<DestEntry> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| DestEntry {
            id: i as u64 + 1,
            addr: Ipv4Addr::new(198, 18, 0, 11 + i as u8).into(),
            port: 80,
            forward: Forward::Route,
            weight: *w,
            listed_weight: *w,
            last_weight: *w,
            mac: MacAddr::ZERO,
            link: 0,
            state: Arc::new(DestState::default()),
        })
        .collect()
}

/// A service's scheduler as a worker runs it: its state, and the
/// buckets its table was published with.
pub(super) struct Sched {
    kind: SchedulerKind,
    state: SchedState,
    buckets: Buckets,
    flags: SchedFlags,
}

impl Sched {
    pub(super) fn new(kind: SchedulerKind, d: &[DestEntry]) -> Sched {
        let (state, buckets) = (SchedState::new(kind, &Member::of(d)), buckets(kind, d));
        Sched {
            kind,
            state,
            buckets,
            flags: SchedFlags::default(),
        }
    }

    pub(super) fn with_flags(mut self, flags: u8) -> Sched {
        self.flags = SchedFlags(flags);
        self
    }

    pub(super) fn pick_key(&mut self, d: &[DestEntry], key: &ConnKey) -> Option<usize> {
        let pool = Pool {
            dests: d,
            buckets: &self.buckets,
            flags: self.flags,
        };
        self.state.schedule(&pool, &SchedKey::of(key))
    }

    pub(super) fn pick(&mut self, d: &[DestEntry], client: Ipv4Addr) -> Option<usize> {
        let key = ConnKey {
            protocol: Protocol::Tcp,
            caddr: client,
            cport: 1024,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
        };
        self.pick_key(d, &key)
    }

    /// The table was published again with `new` as the servers.
    fn dests_changed(&mut self, old: &[DestEntry], new: &[DestEntry]) {
        self.state.update(&Member::of(old), &Member::of(new));
        self.buckets = buckets(self.kind, new);
    }
}

pub(super) fn run(kind: SchedulerKind, weights: &[u32], n: usize) -> String {
    let d = dests(weights);
    let mut s = Sched::new(kind, &d);
    (0..n)
        .map(|_| s.pick(&d, C).map_or('-', |i| (b'A' + i as u8) as char))
        .collect()
}

#[test]
fn wrr_matches_kernel_sequences() {
    // Sequences derived from ip_vs_wrr.c (see docs/architecture.md).
    assert_eq!(
        run(SchedulerKind::Wrr, &[4, 3, 2], 18),
        "AABABCABCAABABCABC"
    );
    assert_eq!(run(SchedulerKind::Wrr, &[5, 1, 1], 14), "AAAAABCAAAAABC");
    assert_eq!(run(SchedulerKind::Wrr, &[4, 2], 12), "AABAABAABAAB");
    assert_eq!(run(SchedulerKind::Wrr, &[1, 1, 1], 6), "ABCABC");
    assert_eq!(run(SchedulerKind::Wrr, &[3, 0, 1], 8), "AAACAAAC");
    assert_eq!(run(SchedulerKind::Wrr, &[0, 0], 3), "---");
}

#[test]
fn wrr_three_to_one() {
    let seq = run(SchedulerKind::Wrr, &[3, 1], 400);
    assert_eq!(seq.matches('A').count(), 300);
    assert_eq!(seq.matches('B').count(), 100);
}

#[test]
fn rr_skips_weight_zero() {
    assert_eq!(run(SchedulerKind::Rr, &[1, 1, 1], 6), "ABCABC");
    assert_eq!(run(SchedulerKind::Rr, &[1, 0, 5], 4), "ACAC");
    assert_eq!(run(SchedulerKind::Rr, &[0], 2), "--");
    assert_eq!(run(SchedulerKind::Rr, &[], 1), "-");
}

#[test]
fn rr_continues_after_a_removed_server() {
    let old = dests(&[1, 1, 1]);
    let mut s = Sched::new(SchedulerKind::Rr, &old);
    assert_eq!(s.pick(&old, C), Some(0));
    assert_eq!(s.pick(&old, C), Some(1));
    // Remove B (the current one): the next pick is C, as in the kernel.
    let new: Vec<DestEntry> = vec![old[0].clone(), old[2].clone()];
    s.dests_changed(&old, &new);
    assert_eq!(s.pick(&new, C).map(|i| new[i].id), Some(3));
}

#[test]
fn wrr_change_resets_position() {
    let old = dests(&[3, 1]);
    let mut s = Sched::new(SchedulerKind::Wrr, &old);
    s.pick(&old, C);
    let mut new = old.clone();
    new[0].weight = 0;
    new[0].listed_weight = 0;
    s.dests_changed(&old, &new);
    for _ in 0..5 {
        assert_eq!(s.pick(&new, C), Some(1));
    }
}

#[test]
fn wlc_prefers_low_overhead_per_weight() {
    let d = dests(&[1, 2]);
    d[0].state
        .active
        .store(1, std::sync::atomic::Ordering::Relaxed);
    d[1].state
        .active
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let mut s = Sched::new(SchedulerKind::Wlc, &d);
    assert_eq!(s.pick(&d, C), Some(1));
    let mut l = Sched::new(SchedulerKind::Lc, &d);
    assert_eq!(l.pick(&d, C), Some(0));
}

#[test]
fn sh_tiles_by_weight_and_sticks_to_the_client_across_restarts() {
    let mut d = dests(&[3, 1]);
    let b = buckets(SchedulerKind::Sh, &d);
    // Weight 3 then 1, repeated over the 256 buckets.
    assert_eq!(&b[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
    let a = Ipv4Addr::new(198, 18, 0, 10);
    let mut s1 = Sched::new(SchedulerKind::Sh, &d);
    let mut s2 = Sched::new(SchedulerKind::Sh, &d);
    let first = s1.pick(&d, a);
    // A fresh state (a restarted director) derives the same server.
    assert_eq!(s2.pick(&d, a), first);
    assert_eq!(s1.pick(&d, a), first);
    let hits = (0..4000u32)
        .filter(|i| s1.pick(&d, Ipv4Addr::from(0xc612_0000 + i * 7919)) == Some(0))
        .count();
    assert!((2700..3300).contains(&hits), "{hits}");
    // A server at weight 0 passes its clients on (sh-fallback).
    d[first.unwrap()].weight = 0;
    let mut s3 = Sched::new(SchedulerKind::Sh, &d);
    let other = s3.pick(&d, a);
    assert!(other.is_some() && other != first);
    d[other.unwrap()].weight = 0;
    assert_eq!(Sched::new(SchedulerKind::Sh, &d).pick(&d, a), None);
}

mod kernel;
mod maglev;

/// IPVS's hashing schedulers fold an IPv6 address to 32 bits by XOR of
/// its four words; an IPv4 address is its own 32 bits.
#[test]
fn an_ipv6_flow_is_folded_as_ipvs_folds_it() {
    let c: std::net::Ipv6Addr = "2001:2::a:1:2".parse().unwrap();
    let k = SchedKey::new(c.into(), 1024, C.into());
    // Words 2001:0002, 0000:0000, 0000:000a, 0001:0002.
    assert_eq!(k.caddr, 0x2001_0002 ^ 0x0000_000a ^ 0x0001_0002);
    assert_eq!((k.cport, k.vaddr), (1024, u32::from(C)));
}
