//! Schedulers: which real server a new connection goes to. rr and wrr follow
//! the kernel's ip_vs_rr.c and ip_vs_wrr.c step by step, so an operator
//! migrating from IPVS sees the same sequence; lc and wlc use the kernel's
//! overhead formula.

use crate::lvs::service::SchedulerKind;
use crate::lvs::table::DestEntry;

/// Per-service scheduler state, owned by the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedState {
    /// Index of the last chosen server; `None` is the list head.
    Rr {
        cl: Option<usize>,
    },
    /// ip_vs_wrr_mark: current position, current weight, max weight (less
    /// gcd-1), gcd of the weights.
    Wrr {
        cl: Option<usize>,
        cw: i64,
        mw: i64,
        di: i64,
    },
    Lc,
    Wlc,
    /// ip_vs_sh's bucket table: each bucket holds a server's index.
    Sh {
        buckets: Box<[u16; SH_BUCKETS]>,
    },
}

/// IP_VS_SH_TAB_SIZE with the default CONFIG_IP_VS_SH_TAB_BITS of 8.
const SH_BUCKETS: usize = 256;
const NO_DEST: u16 = u16::MAX;

/// ip_vs_sh_reassign: the servers, in list order, each tiled over as many
/// consecutive buckets as its weight (at least one).
fn sh_buckets(dests: &[DestEntry]) -> Box<[u16; SH_BUCKETS]> {
    let mut b = Box::new([NO_DEST; SH_BUCKETS]);
    if dests.is_empty() {
        return b;
    }
    let (mut p, mut count) = (0usize, 0u32);
    for slot in b.iter_mut() {
        *slot = p as u16;
        count += 1;
        if count >= dests[p].weight {
            p = (p + 1) % dests.len();
            count = 0;
        }
    }
    b
}

/// ip_vs_sh_hashkey without sh-port: hash_32 of the client address.
fn sh_hash(client: std::net::Ipv4Addr, offset: usize) -> usize {
    let h = u32::from(client).wrapping_mul(0x61C8_8647) >> (32 - 8);
    (offset + h as usize) % SH_BUCKETS
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// (gcd of the positive weights or 1, max weight less gcd-1).
fn wrr_marks(dests: &[DestEntry]) -> (i64, i64) {
    let g = dests
        .iter()
        .map(|d| d.weight)
        .filter(|w| *w > 0)
        .fold(0, gcd);
    let di = if g == 0 { 1 } else { i64::from(g) };
    let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
    (di, max - (di - 1))
}

/// IPVS's connection overhead: active connections weigh 256 inactive ones.
fn overhead(d: &DestEntry) -> u64 {
    (u64::from(d.state.active()) << 8) + u64::from(d.state.inactive())
}

impl SchedState {
    pub fn new(kind: SchedulerKind, dests: &[DestEntry]) -> SchedState {
        match kind {
            SchedulerKind::Rr => SchedState::Rr { cl: None },
            SchedulerKind::Wrr => {
                let (di, mw) = wrr_marks(dests);
                SchedState::Wrr {
                    cl: None,
                    cw: mw,
                    mw,
                    di,
                }
            }
            SchedulerKind::Lc => SchedState::Lc,
            SchedulerKind::Wlc => SchedState::Wlc,
            SchedulerKind::Sh => SchedState::Sh {
                buckets: sh_buckets(dests),
            },
        }
    }

    /// The real-server set or a weight changed. `old` is the previous list
    /// and `new` the current one (both newest first).
    pub fn dests_changed(&mut self, old: &[DestEntry], new: &[DestEntry]) {
        match self {
            SchedState::Rr { cl } => {
                // ip_vs_rr_del_dest: if the current server went away, step
                // back to its predecessor so the rotation carries on after it.
                if let Some(i) = *cl {
                    let id = old.get(i).map(|d| d.id);
                    *cl = match new.iter().position(|d| Some(d.id) == id) {
                        Some(p) => Some(p),
                        None => {
                            // Find the nearest surviving predecessor.
                            old[..i.min(old.len())]
                                .iter()
                                .rev()
                                .find_map(|o| new.iter().position(|d| d.id == o.id))
                        }
                    };
                }
            }
            SchedState::Wrr { cl, cw, mw, di } => {
                // ip_vs_wrr_dest_changed.
                let (ndi, nmw) = wrr_marks(new);
                *di = ndi;
                *mw = nmw;
                *cl = None;
                if *cw > *mw || *cw == 0 {
                    *cw = *mw;
                } else if *di > 1 {
                    *cw = (*cw / *di) * *di + 1;
                }
            }
            SchedState::Sh { buckets } => *buckets = sh_buckets(new),
            SchedState::Lc | SchedState::Wlc => {}
        }
    }

    /// Picks a server for a new connection; `None` means "no destination
    /// available" (every weight 0, or no servers).
    /// `client` is the client's address (the hash schedulers use it).
    pub fn pick(&mut self, dests: &[DestEntry], client: std::net::Ipv4Addr) -> Option<usize> {
        match self {
            SchedState::Rr { cl } => rr(cl, dests),
            SchedState::Wrr { cl, cw, mw, di } => wrr(cl, cw, *mw, *di, dests),
            SchedState::Lc => least(dests, overhead, |_| 1),
            SchedState::Wlc => least(dests, overhead, |d| u64::from(d.weight)),
            SchedState::Sh { buckets } => sh(buckets, dests, client),
        }
    }
}

/// ip_vs_sh_schedule, always with sh-fallback: a server at weight 0
/// (quiesced by its check, say) passes its clients on to the next
/// buckets' servers instead of leaving them with no destination.
fn sh(
    buckets: &[u16; SH_BUCKETS],
    dests: &[DestEntry],
    client: std::net::Ipv4Addr,
) -> Option<usize> {
    for offset in 0..SH_BUCKETS {
        let i = buckets[sh_hash(client, offset)];
        let d = dests.get(usize::from(i))?;
        if d.weight > 0 {
            return Some(usize::from(i));
        }
    }
    None
}

fn rr(cl: &mut Option<usize>, dests: &[DestEntry]) -> Option<usize> {
    let n = dests.len();
    if n == 0 {
        return None;
    }
    let start = cl.map_or(0, |i| i + 1);
    // Everything after the last pick, then from the head up to and
    // including it.
    let order = (start..n).chain(0..start.min(n));
    for i in order {
        if dests[i].weight > 0 {
            *cl = Some(i);
            return Some(i);
        }
    }
    None
}

fn wrr(
    cl: &mut Option<usize>,
    cw: &mut i64,
    mw: i64,
    di: i64,
    dests: &[DestEntry],
) -> Option<usize> {
    if mw <= 0 || dests.is_empty() {
        return None;
    }
    let last = cl.filter(|i| *i < dests.len());
    let mut pos = last;
    let mut stop: Option<usize> = None;
    let mut last_pass = false;
    let mut restarted = false;
    // The kernel loop terminates by its pass logic; the guard only protects
    // against an inconsistent state (it cannot take more passes than this).
    let max_passes = 2 * (mw / di.max(1) + 2);
    for _ in 0..max_passes {
        let start = pos.map_or(0, |i| i + 1);
        for (i, d) in dests.iter().enumerate().skip(start) {
            if i64::from(d.weight) >= *cw {
                *cl = Some(i);
                return Some(i);
            }
            if stop == Some(i) {
                *cl = Some(i);
                return None;
            }
        }
        pos = None;
        *cw -= di;
        if *cw <= 0 {
            *cw = mw;
            if last_pass || last.is_none() {
                *cl = None;
                return None;
            }
            restarted = true;
        }
        last_pass = *cw <= di;
        if last_pass && restarted && last.is_some() {
            stop = last;
        }
    }
    None
}

/// The server minimising overhead/weight, compared by cross-multiplying
/// as the kernel does; ties go to the earlier server in list order.
fn least(
    dests: &[DestEntry],
    oh: impl Fn(&DestEntry) -> u64,
    w: impl Fn(&DestEntry) -> u64,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.weight == 0 {
            continue;
        }
        let (o, wt) = (oh(d), w(d));
        match best {
            Some((_, bo, bw))
                if u128::from(bo) * u128::from(wt) <= u128::from(o) * u128::from(bw) => {}
            _ => best = Some((i, o, wt)),
        }
    }
    best.map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 10);
    use crate::lvs::service::Forward;
    use crate::lvs::stats::DestState;
    use crate::wire::MacAddr;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn dests(weights: &[u32]) -> Vec<DestEntry> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| DestEntry {
                id: i as u64 + 1,
                addr: Ipv4Addr::new(198, 18, 0, 11 + i as u8),
                port: 80,
                forward: Forward::Route,
                weight: *w,
                mac: MacAddr::ZERO,
                link: 0,
                state: Arc::new(DestState::default()),
            })
            .collect()
    }

    fn run(kind: SchedulerKind, weights: &[u32], n: usize) -> String {
        let d = dests(weights);
        let mut s = SchedState::new(kind, &d);
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
        let mut s = SchedState::new(SchedulerKind::Rr, &old);
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
        let mut s = SchedState::new(SchedulerKind::Wrr, &old);
        s.pick(&old, C);
        let mut new = old.clone();
        new[0].weight = 0;
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
        let mut s = SchedState::new(SchedulerKind::Wlc, &d);
        assert_eq!(s.pick(&d, C), Some(1));
        let mut l = SchedState::new(SchedulerKind::Lc, &d);
        assert_eq!(l.pick(&d, C), Some(0));
    }

    #[test]
    fn sh_tiles_by_weight_and_sticks_to_the_client_across_restarts() {
        let mut d = dests(&[3, 1]);
        let b = sh_buckets(&d);
        // Weight 3 then 1, repeated over the 256 buckets.
        assert_eq!(&b[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let a = Ipv4Addr::new(198, 18, 0, 10);
        let mut s1 = SchedState::new(SchedulerKind::Sh, &d);
        let mut s2 = SchedState::new(SchedulerKind::Sh, &d);
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
        let mut s3 = SchedState::new(SchedulerKind::Sh, &d);
        let other = s3.pick(&d, a);
        assert!(other.is_some() && other != first);
        d[other.unwrap()].weight = 0;
        assert_eq!(SchedState::new(SchedulerKind::Sh, &d).pick(&d, a), None);
    }
}
