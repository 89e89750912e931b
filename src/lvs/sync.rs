//! What connection sync between directors (HA) carries, between the data
//! plane that makes the changes and the control plane that sends them
//! (`ha::sync` is the wire format, `control::server::ha` the task): the
//! active director's data plane queues a [`Record`] for each new
//! connection, state change and removal (as IPVS's sync daemon does: not
//! every packet) as a [`SyncEvent`] on a bounded queue; both directors
//! compare their tables by [`Digest`].

use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, PortableConn, PortableKey};
use serde::{Deserialize, Serialize};

/// Room for this many queued events between two drains of the control
/// plane (every 10 ms): about 1.6 M new connections a second. A full
/// queue loses the event, is counted, and makes the control plane send
/// the whole table again.
pub const QUEUE: usize = 16384;

/// One change to the synced table, of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A connection or a persistence template, new or with a new state.
    Upsert(PortableConn),
    Remove(PortableKey),
    /// A persistence template goes (its key is not a connection's).
    RemoveTemplate(PortableKey),
}

impl Record {
    /// The removal of entry `k`, a template or not by its `state`.
    #[inline]
    pub fn removal<A: Addr>(k: &ConnKey<A>, state: ConnState) -> Record {
        match state.is_template() {
            true => Record::RemoveTemplate(k.portable()),
            false => Record::Remove(k.portable()),
        }
    }

    /// The key of the entry it changes.
    pub fn key(&self) -> PortableKey {
        match self {
            Record::Upsert(p) => p.key(),
            Record::Remove(k) | Record::RemoveTemplate(k) => *k,
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
/// connection table's keyed hash). An IPv4 entry's is what it was before
/// IPv6 (a director of that version compares it); an IPv6 address enters
/// as its [`Addr::digest_word`].
#[inline]
pub fn digest_term<A: Addr>(k: &ConnKey<A>, raddr: A, rport: u16, state: ConnState) -> u64 {
    use super::splitmix as mix;
    let a = (u64::from(k.protocol.number()) << 56)
        | (u64::from(k.caddr.digest_word()) << 16)
        | u64::from(k.cport);
    let b =
        (u64::from(k.vaddr.digest_word()) << 32) | (u64::from(k.vport) << 16) | u64::from(rport);
    let c = (u64::from(raddr.digest_word()) << 8) | u64::from(state.code());
    mix(a ^ mix(b ^ mix(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::TcpState;
    use crate::lvs::service::Protocol;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An IPv4 entry's term is the one a director of the version before
    /// IPv6 computes (its formula, written out), so the two compare
    /// digests; an IPv6 entry's differs from the IPv4 one's.
    #[test]
    fn an_ipv4_entrys_digest_term_is_as_before_ipv6() {
        use crate::lvs::splitmix as mix;
        let k = ConnKey {
            protocol: Protocol::Tcp,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
        };
        let (raddr, rport) = (Ipv4Addr::new(198, 18, 0, 11), 8080);
        let state = ConnState::Tcp(TcpState::Established);
        let a = (6u64 << 56) | (u64::from(u32::from(k.caddr)) << 16) | 40000;
        let b = (u64::from(u32::from(k.vaddr)) << 32) | (80 << 16) | 8080;
        let c = (u64::from(u32::from(raddr)) << 8) | u64::from(state.code());
        assert_eq!(
            digest_term(&k, raddr, rport, state),
            mix(a ^ mix(b ^ mix(c)))
        );
        let v6 = |a: Ipv4Addr| a.to_ipv6_mapped();
        let k6 = ConnKey {
            protocol: k.protocol,
            caddr: v6(k.caddr),
            cport: k.cport,
            vaddr: v6(k.vaddr),
            vport: k.vport,
        };
        let t6: u64 = digest_term(&k6, v6(raddr), rport, state);
        assert_ne!(t6, digest_term(&k, raddr, rport, state));
        let other = ConnKey {
            caddr: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 10),
            ..k6
        };
        assert_ne!(t6, digest_term(&other, v6(raddr), rport, state));
    }
}
