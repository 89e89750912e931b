//! Weighted round robin (ip_vs_wrr.c), step by step as the kernel does
//! it, so an operator migrating from IPVS sees the same sequence.

use super::scheduler::{Member, Pool, SchedKey, Scheduler, gcd};

/// ip_vs_wrr_mark: current position, current weight, max weight (less
/// gcd-1), gcd of the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrr {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

/// (gcd of the positive weights or 1, max weight less gcd-1), from the
/// weights as IPVS holds them.
fn marks(dests: &[Member]) -> (i64, i64) {
    let g = dests
        .iter()
        .map(|d| d.weight)
        .filter(|w| *w > 0)
        .fold(0, gcd);
    let di = if g == 0 { 1 } else { i64::from(g) };
    let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
    (di, max - (di - 1))
}

impl Scheduler for Wrr {
    fn init(dests: &[Member]) -> Wrr {
        let (di, mw) = marks(dests);
        Wrr {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// ip_vs_wrr_dest_changed (a list the kernel would not have seen
    /// change, as when only a MAC resolved, is no change).
    fn update(&mut self, old: &[Member], new: &[Member]) {
        if old == new {
            return;
        }
        (self.di, self.mw) = marks(new);
        self.cl = None;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, pool: &Pool, _: &SchedKey) -> Option<usize> {
        let dests = pool.dests;
        let Wrr { cl, cw, mw, di } = self;
        let (mw, di) = (*mw, *di);
        if mw <= 0 || dests.is_empty() {
            return None;
        }
        let last = cl.filter(|i| *i < dests.len());
        let mut pos = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // The kernel loop terminates by its pass logic; the guard only
        // protects against an inconsistent state (it cannot take more
        // passes than this).
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
}
