//! Round robin (ip_vs_rr.c), step by step as the kernel does it, so an
//! operator migrating from IPVS sees the same sequence.

use super::scheduler::{Member, Pool, SchedKey, Scheduler};

/// The last chosen server's index; `None` is the list head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    cl: Option<usize>,
}

impl Scheduler for Rr {
    fn init(_dests: &[Member]) -> Rr {
        Rr { cl: None }
    }

    /// ip_vs_rr_del_dest: if the current server went away, step back to
    /// its predecessor so the rotation carries on after it.
    fn update(&mut self, old: &[Member], new: &[Member]) {
        if let Some(i) = self.cl {
            let id = old.get(i).map(|d| d.id);
            self.cl = match new.iter().position(|d| Some(d.id) == id) {
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

    fn schedule(&mut self, pool: &Pool, _: &SchedKey) -> Option<usize> {
        let dests = pool.dests;
        let n = dests.len();
        if n == 0 {
            return None;
        }
        let start = self.cl.map_or(0, |i| i + 1);
        // Everything after the last pick, then from the head up to and
        // including it.
        let order = (start..n).chain(0..start.min(n));
        for i in order {
            if dests[i].weight > 0 {
                self.cl = Some(i);
                return Some(i);
            }
        }
        None
    }
}
