//! What connection sync between directors (HA) carries, between the data
//! plane that makes the changes and the control plane that sends them
//! (`ha::sync` is the wire format, `control::server::ha` the task): the
//! active director's data plane queues a [`Record`] for each new
//! connection, state change and removal (as IPVS's sync daemon does: not
//! every packet) as a [`SyncEvent`] on a bounded queue; both directors
//! compare their tables by [`Digest`].

use crate::lvs::conn::{ConnKey, ConnState, PortableConn};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Room for this many queued events between two drains of the control
/// plane (every 10 ms): about 1.6 M new connections a second. A full
/// queue loses the event, is counted, and makes the control plane send
/// the whole table again.
pub const QUEUE: usize = 16384;

/// One change to the synced table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A connection or a persistence template, new or with a new state.
    Upsert(PortableConn),
    Remove(ConnKey),
    /// A persistence template goes (its key is not a connection's).
    RemoveTemplate(ConnKey),
}

impl Record {
    /// The removal of entry `k`, a template or not by its `state`.
    pub fn removal(k: ConnKey, state: ConnState) -> Record {
        match state.is_template() {
            true => Record::RemoveTemplate(k),
            false => Record::Remove(k),
        }
    }
}

/// What the data plane queues for the control plane, in the order of the
/// changes, so what is sent matches the table at every point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEvent {
    Record(Record),
    /// The table's digest at this point of the stream: this worker's
    /// share of round `.0` (the HA task sums the workers').
    Digest(u64, Digest),
    /// A chunk of a full resync was read here: records queued before
    /// this belong before the chunk.
    Mark(u64),
}

/// What two directors compare to tell whether their synced tables agree:
/// the number of entries and an order-independent sum over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub count: u64,
    pub sum: u64,
}

impl Digest {
    /// The digest of a table split in parts (the workers').
    pub fn sum_of(parts: &[Digest]) -> Digest {
        parts.iter().fold(Digest::default(), |a, d| Digest {
            count: a.count + d.count,
            sum: a.sum.wrapping_add(d.sum),
        })
    }
}

/// One entry's share of the digest: its 5-tuple, real server and state,
/// mixed with a fixed function (the same in every process, unlike the
/// connection table's keyed hash).
pub fn digest_term(k: &ConnKey, raddr: Ipv4Addr, rport: u16, state: ConnState) -> u64 {
    use super::splitmix as mix;
    let a = (u64::from(k.protocol.number()) << 56)
        | (u64::from(u32::from(k.caddr)) << 16)
        | u64::from(k.cport);
    let b = (u64::from(u32::from(k.vaddr)) << 32) | (u64::from(k.vport) << 16) | u64::from(rport);
    let c = (u64::from(u32::from(raddr)) << 8) | u64::from(state.code());
    mix(a ^ mix(b ^ mix(c)))
}
