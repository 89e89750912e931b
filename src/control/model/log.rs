//! A service's changes as the kernel's scheduler hooks would see them
//! (add_dest, del_dest, upd_dest, a new scheduler bound), logged so that
//! a worker that picks up several at once replays them in order.

use super::{Dest, Service};
use crate::lvs::sched::scheduler::Member;
use crate::lvs::sched::{Change, Logged};

/// How many changes a service keeps: more than a worker misses between
/// two tables in practice (a longer gap arrives as one change).
const KEPT: usize = 64;

impl Service {
    /// The real servers the data plane and listings see (not those a
    /// failed check removed).
    pub(super) fn listed(&self) -> impl Iterator<Item = &Dest> {
        self.dests.iter().filter(|d| d.listed())
    }

    /// The real servers as IPVS would list them: listed ones, with the
    /// weight `-L` shows (an unresolved next hop does not count).
    fn members(&self) -> Vec<Member> {
        self.listed()
            .map(|d| Member {
                id: d.id,
                weight: d.shown_weight(),
            })
            .collect()
    }

    fn push(&mut self, change: Change) {
        let mut log = self.log.to_vec();
        if log.len() >= KEPT {
            log.remove(0);
        }
        log.push(Logged {
            epoch: self.epoch,
            change,
        });
        self.log = log.into();
    }

    /// Something about the real servers changed: a new epoch, and a
    /// logged change if the kernel would have been told of one (not for
    /// a MAC that resolved, say).
    pub(super) fn changed(&mut self) {
        self.epoch += 1;
        let now = self.members();
        let last = self.log.iter().rev().find_map(|l| match &l.change {
            Change::Dests(m) => Some(m.clone()),
            Change::Bind => None,
        });
        if last.as_deref() != Some(&now[..]) {
            self.push(Change::Dests(now.into()));
        }
    }

    /// A scheduler was bound anew (init_service).
    pub(super) fn rebound(&mut self) {
        self.epoch += 1;
        self.push(Change::Bind);
    }
}
