//! The table walked in bounded pieces, so nothing about a large table
//! pauses forwarding: the sweep's steps, listing chunks (`-Lnc`, a resync)
//! and the end of a full resync; full passes for tests and shutdown.

use super::{ConnTable, Entry, LIVE, MARK};
use crate::dataplane::conn::Conn;
use crate::lvs::addr::Addr;
use crate::lvs::conn::ConnKey;

/// What one bounded sweep step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStep {
    pub visited: usize,
    pub removed: usize,
    /// The step reached the end of the slots and starts over next time.
    pub wrapped: bool,
}

impl<A: Addr> ConnTable<A> {
    /// A full resync begins: every entry now counts as not confirmed.
    pub fn begin_marking(&mut self) {
        self.mark = !self.mark;
    }

    /// Confirms a connection during a resync.
    pub fn confirm(&mut self, k: &ConnKey<A>) {
        self.confirm_entry(k, false);
    }

    /// A full resync ended: drops the entries it did not confirm, and
    /// returns them.
    pub fn drop_unconfirmed(&mut self) -> Vec<Conn<A>> {
        let mark = self.mark;
        let mut gone = Vec::new();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.has(LIVE) && s.has(MARK) != mark {
                gone.push(self.release_slot(i as u32));
            }
        }
        gone
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey<A>, &Conn<A>)> {
        self.slots
            .iter()
            .filter(|s| s.has(LIVE))
            .map(|s| (&s.key, &s.conn))
    }

    /// Up to `n` connections from slot `from` on, and where the next
    /// chunk starts (`None` at the end): listings of a large table go in
    /// bounded pieces between frames. Entries added or removed meanwhile
    /// may or may not appear, as in a listing of /proc/net/ip_vs_conn.
    pub fn chunk(&self, from: usize, n: usize) -> (Vec<Entry<A>>, Option<usize>) {
        let mut out = Vec::with_capacity(n.min(self.len()));
        let mut i = from;
        while i < self.slots.len() && out.len() < n {
            let s = &self.slots[i];
            if s.has(LIVE) {
                out.push((s.key, s.conn));
            }
            i += 1;
        }
        (out, (i < self.slots.len()).then_some(i))
    }

    /// One bounded step of the table's sweep: visits at most `visit`
    /// slots from where the last step stopped and removes at most
    /// `remove` entries, those for which `f` returns false (`f` may update
    /// the others). `f` is told how many connections an entry controls
    /// (a template's; 0 for a connection).
    pub fn sweep_step(
        &mut self,
        visit: usize,
        remove: usize,
        mut f: impl FnMut(&ConnKey<A>, &mut Conn<A>, u32) -> bool,
    ) -> SweepStep {
        let mut step = SweepStep::default();
        while step.visited < visit && step.removed < remove {
            if self.cursor >= self.slots.len() {
                self.cursor = 0;
                step.wrapped = true;
                break;
            }
            let i = self.cursor;
            self.cursor += 1;
            step.visited += 1;
            let controls = self.controlled(i);
            let s = &mut self.slots[i];
            if !s.has(LIVE) || f(&s.key, &mut s.conn, controls) {
                continue;
            }
            self.release_slot(i as u32);
            step.removed += 1;
        }
        step
    }

    /// Keeps the entries for which `f` returns true, in one full pass
    /// (tests, and shutdown-time work; the data plane sweeps in steps).
    pub fn retain(&mut self, mut f: impl FnMut(&ConnKey<A>, &mut Conn<A>, u32) -> bool) {
        self.cursor = 0;
        loop {
            let step = self.sweep_step(usize::MAX, usize::MAX, &mut f);
            if step.wrapped || self.slots.is_empty() {
                break;
            }
        }
    }
}
