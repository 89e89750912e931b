//! A real server as the published table carries it to the data plane
//! and its schedulers ([`sched`](super::sched), which the table's
//! constructor calls, so it lives apart from [`table`](super::table)).

use crate::lvs::service::Forward;
use crate::lvs::stats::DestState;
use crate::wire::MacAddr;
use std::net::IpAddr;
use std::sync::Arc;

/// A real server as the data plane needs it.
#[derive(Debug, Clone)]
pub struct DestEntry {
    /// Unique for the daemon's lifetime; a connection remembers it so a
    /// removed-then-re-added server does not inherit old connections.
    pub id: u64,
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    /// The weight schedulers pick with: 0 while quiesced or while its
    /// next hop is not resolved.
    pub weight: u32,
    /// The weight as IPVS would hold it (what `-L` lists): 0 when
    /// quiesced, but an unresolved next hop does not count. wrr's marks
    /// (gcd, maximum) follow it, so the rotation does not depend on when
    /// a MAC resolves.
    pub listed_weight: u32,
    /// The latest weight set, quiesced or not (the kernel's last_weight):
    /// mh's lookup table is built from it, so quiescing a server does not
    /// reshuffle the table.
    pub last_weight: u32,
    /// DR: the real server's MAC. TUN and NAT: the MAC of the next hop
    /// towards it (the real server itself, or the router in front of it).
    pub mac: MacAddr,
    /// The director's link (interface) towards it.
    pub link: u8,
    pub state: Arc<DestState>,
}
