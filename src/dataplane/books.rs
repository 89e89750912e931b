//! Where a connection's counts are kept: its service and real server in
//! the current table, found again by id after a republication moved them
//! ([`locate`]), the real server's active and inactive counts ([`take`],
//! [`release`]), and the counters of real servers that already left the
//! table ([`Retired`], for offloaded flows taken back late).

use super::conn::Conn;
use crate::lvs::addr::Addr;
use crate::lvs::conn::ConnState;
use crate::lvs::stats::{DestState, Stats};
use crate::lvs::table::{DestEntry, ServiceEntry, Table};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The service and real server of a connection in `table`, remapping its
/// indexes if the table changed since; `None` if the server is gone.
#[inline]
pub fn locate<'t, A: Addr>(
    table: &'t Table,
    positions: &HashMap<u32, (u32, u32)>,
    c: &mut Conn<A>,
) -> Option<(&'t ServiceEntry, &'t DestEntry)> {
    if table.dest(c.svc, c.dest, c.dest_id).is_none() {
        let &(s, d) = positions.get(&c.dest_id)?;
        (c.svc, c.dest) = (s, d);
    }
    table.dest(c.svc, c.dest, c.dest_id)
}

/// Counts a packet of `len` bytes on a connection's service `svc` and
/// real server `d`: into the director (`inbound`) or out of it.
pub fn count(svc: &ServiceEntry, d: &DestEntry, inbound: bool, len: usize) {
    for s in [&svc.stats, &d.state.stats] {
        if inbound {
            s.count_in(len);
        } else {
            s.count_out(len);
        }
    }
}

/// Adds `packets` frames of `bytes` into the director to a connection's
/// service and real server counters (`pair`, as [`Books`] finds them),
/// for frames the kernel program forwarded; nothing if they are gone.
pub fn count_in_many(pair: Option<(&Stats, &Stats)>, packets: u64, bytes: u64) {
    for s in pair.into_iter().flat_map(|(svc, d)| [svc, d]) {
        s.count_in_many(packets, bytes);
    }
}

/// The count a connection in `state` takes in its real server's: active
/// or inactive.
/// A template counts in the persistent ones (IPVS's `persistconns`).
fn count_of(d: &DestState, state: ConnState) -> &AtomicU32 {
    match state {
        ConnState::Template | ConnState::Assured => &d.persistent,
        s if s.is_active() => &d.active,
        _ => &d.inactive,
    }
}

/// Counts a connection in `state` in its real server's active or inactive
/// connections.
pub fn take(d: &DestState, state: ConnState) {
    count_of(d, state).fetch_add(1, Relaxed);
}

/// Gives a connection's slot back in its real server's active or inactive
/// count.
pub fn release<A: Addr>(d: &DestState, c: &Conn<A>) {
    let _ = count_of(d, c.state).fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
}

/// The counters of real servers that left the table (`uvsadm -d`, a
/// health check's `remove`, their service deleted), by id as connections
/// keep it, with their service's. Their offloaded flows are taken back
/// only when the sweep reaches them, after the table changed: what the
/// program forwarded still counts for the service, as it would have
/// without the program, and for the real server (a health check's
/// removal keeps it, with its counters, for its return). Kept until the
/// sweep has seen every connection since the last change.
#[derive(Default)]
pub struct Retired {
    /// By the low 32 bits of the id (as a connection keeps it), with the
    /// whole id.
    dests: HashMap<u32, (Arc<Stats>, Arc<DestState>, u64)>,
}

impl Retired {
    /// The table changed from `old` to the one whose real servers sit at
    /// `positions`: keeps the counters of those it no longer has.
    pub(super) fn table_changed(&mut self, old: &Table, positions: &HashMap<u32, (u32, u32)>) {
        // Back in the table (a health check's return): found there.
        self.dests.retain(|id, _| !positions.contains_key(id));
        for s in &old.services {
            for d in &s.dests {
                let id = d.id as u32;
                if !positions.contains_key(&id) {
                    self.dests
                        .entry(id)
                        .or_insert_with(|| (s.stats.clone(), d.state.clone(), d.id));
                }
            }
        }
    }

    /// The sweep has seen every connection since the last change: none
    /// can name a retired real server any more.
    pub(super) fn forget(&mut self) {
        self.dests.clear();
    }

    /// The ids of the real servers kept.
    pub(super) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.dests.values().map(|(_, _, id)| *id)
    }
}

/// Where a connection's counts go: its service and real server in the
/// current table (`positions` remaps indexes that a change moved), or
/// the retired ones.
pub(super) struct Books<'a> {
    pub table: &'a Table,
    pub positions: &'a HashMap<u32, (u32, u32)>,
    pub retired: &'a Retired,
}

impl Books<'_> {
    pub(super) fn stats_of<A: Addr>(&self, c: &Conn<A>) -> Option<(&Stats, &Stats)> {
        let mut c = *c;
        if let Some((svc, d)) = locate(self.table, self.positions, &mut c) {
            return Some((&svc.stats, &d.state.stats));
        }
        let (svc, d, _) = self.retired.dests.get(&c.dest_id)?;
        Some((svc, &d.stats))
    }

    /// The service's and real server's counters of real server `id`, in
    /// the table or retired.
    pub(super) fn stats_of_id(&self, id: u64) -> Option<(&Stats, &Stats)> {
        if let Some(&(s, d)) = self.positions.get(&(id as u32)) {
            let svc = self.table.services.get(s as usize)?;
            let d = svc.dests.get(d as usize).filter(|d| d.id == id)?;
            return Some((&svc.stats, &d.state.stats));
        }
        let (svc, d, whole) = self.retired.dests.get(&(id as u32))?;
        (*whole == id).then_some((&**svc, &d.stats))
    }
}
