//! A real server as the published table carries it to the data plane
//! and its schedulers ([`sched`](super::sched), which the table's
//! constructor calls, so it lives apart from [`table`](super::table)).

use crate::lvs::service::Forward;
use crate::lvs::stats::DestState;
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A real server as the data plane needs it.
#[derive(Debug, Clone)]
pub struct DestEntry {
    /// Unique for the daemon's lifetime; a connection remembers it so a
    /// removed-then-re-added server does not inherit old connections.
    pub id: u64,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    /// DR: the real server's MAC. TUN and NAT: the MAC of the next hop
    /// towards it (the real server itself, or the router in front of it).
    pub mac: MacAddr,
    /// The director's link (interface) towards it.
    pub link: u8,
    pub state: Arc<DestState>,
}
