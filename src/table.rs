//! The immutable forwarding table the control plane publishes to the data
//! plane. A configuration change builds a new `Table` and swaps it in; the
//! data plane never sees a half-applied change.

use crate::service::{Forward, SchedulerKind, ServiceKey, Timeouts};
use crate::stats::{DestState, Stats};
use crate::wire::MacAddr;
use std::collections::HashMap;
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
    /// DR: the real server's MAC. TUN: the MAC of the next hop towards it
    /// (the real server itself, or the router in front of it).
    pub mac: MacAddr,
    pub state: Arc<DestState>,
}

/// A virtual service with its real servers in scheduling order (newest
/// first, as the kernel's list_add does).
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub id: u64,
    pub key: ServiceKey,
    pub scheduler: SchedulerKind,
    /// Bumped whenever the real-server set or a weight changes, so the data
    /// plane knows to re-derive scheduler state (ip_vs_wrr_dest_changed).
    pub epoch: u64,
    pub dests: Vec<DestEntry>,
    pub stats: Arc<Stats>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub generation: u64,
    pub services: Vec<ServiceEntry>,
    pub timeouts: Timeouts,
    /// Outer source address of IP-in-IP packets (TUN).
    pub tun_source: Ipv4Addr,
    index: HashMap<ServiceKey, usize>,
    vips: Vec<Ipv4Addr>,
}

impl Default for Table {
    fn default() -> Table {
        Table::new(0, Vec::new(), Timeouts::default())
    }
}

impl Table {
    pub fn new(generation: u64, services: Vec<ServiceEntry>, timeouts: Timeouts) -> Table {
        Table::with_tun_source(generation, services, timeouts, Ipv4Addr::UNSPECIFIED)
    }

    pub fn with_tun_source(
        generation: u64,
        services: Vec<ServiceEntry>,
        timeouts: Timeouts,
        tun_source: Ipv4Addr,
    ) -> Table {
        let index = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        let mut vips: Vec<Ipv4Addr> = services.iter().map(|s| s.key.addr).collect();
        vips.sort();
        vips.dedup();
        Table {
            generation,
            services,
            timeouts,
            tun_source,
            index,
            vips,
        }
    }

    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// True if `addr` is the VIP of any service: the director answers ARP for
    /// it and takes its traffic away from the kernel.
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.binary_search(&addr).is_ok()
    }

    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// Finds a real server by id, checking that the indexes a connection
    /// cached still point at it.
    pub fn dest(&self, svc: u32, dest: u32, id: u64) -> Option<(&ServiceEntry, &DestEntry)> {
        let s = self.services.get(svc as usize)?;
        let d = s.dests.get(dest as usize)?;
        (d.id == id).then_some((s, d))
    }

    /// Where each real server id sits in this table, for remapping
    /// connections after a republication.
    pub fn dest_positions(&self) -> HashMap<u64, (u32, u32)> {
        let mut m = HashMap::new();
        for (si, s) in self.services.iter().enumerate() {
            for (di, d) in s.dests.iter().enumerate() {
                m.insert(d.id, (si as u32, di as u32));
            }
        }
        m
    }
}
