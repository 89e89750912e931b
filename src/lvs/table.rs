//! The immutable forwarding table the control plane publishes to the data
//! plane. A configuration change builds a new `Table` and swaps it in; the
//! data plane never sees a half-applied change.

use crate::host::Prefix;
use crate::lvs::mark::{MarkIndex, MarkRule};
use crate::lvs::sched::{self, Logged, scheduler::Buckets, scheduler::Pool};
use crate::lvs::service::{Persistence, Protocol, SchedFlags, SchedulerKind, ServiceKey, Timeouts};
use crate::lvs::stats::Stats;
use crate::wire::MacAddr;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use crate::lvs::dest::DestEntry;

/// A virtual service with its real servers in scheduling order (newest
/// first, as the kernel's list_add does): as published to the data plane
/// (`D` = [`DestEntry`]), and as the control plane's model holds it, with
/// its own record of each real server.
#[derive(Debug, Clone)]
pub struct ServiceEntry<D = DestEntry> {
    pub id: u64,
    pub key: ServiceKey,
    pub scheduler: SchedulerKind,
    /// Its `-b` flags.
    pub flags: SchedFlags,
    /// One-packet scheduling (`-o`): each datagram scheduled on its own,
    /// no connection entry.
    pub ops: bool,
    /// `-p`/`-M`: new connections go through a persistence template.
    pub persistence: Option<Persistence>,
    /// Bumped whenever the real-server set or a weight changes, so the data
    /// plane knows to re-derive scheduler state (ip_vs_wrr_dest_changed).
    pub epoch: u64,
    /// The latest changes the kernel's scheduler hooks would have seen,
    /// oldest first: a worker replays those after its table's epoch.
    pub log: Arc<[Logged]>,
    pub dests: Vec<D>,
    pub stats: Arc<Stats>,
}

impl<D> ServiceEntry<D> {
    /// The same service with other real servers (the model's, published).
    pub fn with_dests<E>(&self, dests: impl Iterator<Item = E>) -> ServiceEntry<E> {
        ServiceEntry {
            id: self.id,
            key: self.key,
            scheduler: self.scheduler,
            flags: self.flags,
            ops: self.ops,
            persistence: self.persistence,
            epoch: self.epoch,
            log: self.log.clone(),
            dests: dests.collect(),
            stats: self.stats.clone(),
        }
    }
}

impl ServiceEntry {
    /// The real server's port for an entry to `vport` through `d`: its
    /// own, or for a real server without a port (a port-0 service's, a
    /// mark service's) the client's destination port, as IPVS's
    /// `ip_vs_schedule` and `ip_vs_sched_persist` give it. A template's
    /// `vport` is the service's, so a port-0 service's templates name
    /// port 0 as IPVS's do.
    #[inline]
    pub fn dest_port(&self, d: &DestEntry, vport: u16) -> u16 {
        match d.port {
            0 => vport,
            p => p,
        }
    }
}

/// Where the director sends a real server's packets: a link and the MAC
/// of the next hop on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub link: u8,
    pub mac: MacAddr,
}

impl NextHop {
    /// A real server kept in the configuration whose MAC (or its next
    /// hop's) is not known yet: never scheduled until it resolves.
    pub const fn pending(link: u8) -> NextHop {
        NextHop {
            link,
            mac: MacAddr::ZERO,
        }
    }

    pub fn is_resolved(&self) -> bool {
        self.mac != MacAddr::ZERO
    }
}

/// One of the kernel's routes that leaves through a director link: where
/// NAT replies to clients go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRoute {
    pub dst: Prefix,
    pub link: u8,
    /// The gateway's MAC; `None` on-link, where the client's own MAC (the
    /// source of its packets) is used.
    pub gateway_mac: Option<MacAddr>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub generation: u64,
    pub services: Vec<ServiceEntry>,
    pub timeouts: Timeouts,
    /// Outer source address of IP-in-IP packets (TUN).
    pub tun_source: Ipv4Addr,
    /// Outer source address of packets tunnelled to IPv6 real servers.
    pub tun_source6: Ipv6Addr,
    /// Routes towards clients, longest prefix first.
    routes: Vec<LinkRoute>,
    /// Looked up for every frame to a VIP: foldhash, as the connection
    /// table (SipHash cost about 2% of the per-frame time here).
    index: HashMap<ServiceKey, usize, foldhash::fast::RandomState>,
    /// The mark services' frames ([`Table::with_marks`]), looked up first.
    marks: MarkIndex,
    vips: Vec<Ipv4Addr>,
    /// The IPv6 VIPs: the director answers neighbour solicitations for
    /// them and takes their traffic.
    vips6: Vec<Ipv6Addr>,
    /// Some service has port 0 (persistent, every port of its VIP):
    /// a frame that matches no service by its port tries port 0.
    any_port: bool,
    /// Each service's scheduler lookup table ([`sched::buckets`]), in
    /// service order: built here, once per published table, rather than
    /// by every worker.
    buckets: Vec<Buckets>,
    /// A backup director (HA): it answers no ARP for the VIPs and
    /// forwards nothing; the active peer does.
    pub standby: bool,
    /// Bumped to send the VIPs' gratuitous ARPs again (a new active
    /// director repeats them, as keepalived does).
    pub announce: u64,
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
        let mut vips: Vec<Ipv4Addr> = services.iter().filter_map(|s| s.key.vip4()).collect();
        vips.sort();
        vips.dedup();
        let mut vips6: Vec<Ipv6Addr> = services
            .iter()
            .filter_map(|s| match s.key.vip()? {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            })
            .collect();
        vips6.sort();
        vips6.dedup();
        let buckets = services
            .iter()
            .map(|s| sched::buckets(s.scheduler, &s.dests))
            .collect();
        let any_port = services.iter().any(|s| s.key.port == 0);
        Table {
            generation,
            any_port,
            services,
            timeouts,
            tun_source,
            tun_source6: Ipv6Addr::UNSPECIFIED,
            routes: Vec::new(),
            index,
            marks: MarkIndex::default(),
            vips,
            vips6,
            buckets,
            standby: false,
            announce: 0,
        }
    }

    /// The HA role the table is published with.
    pub fn with_ha(mut self, standby: bool, announce: u64) -> Table {
        self.standby = standby;
        self.announce = announce;
        self
    }

    /// The same table with these routes towards clients.
    pub fn with_routes(mut self, mut routes: Vec<LinkRoute>) -> Table {
        routes.sort_by_key(|r| std::cmp::Reverse(r.dst.len));
        self.routes = routes;
        self
    }

    /// The same table with `src` as the outer source of IPv6 tunnels.
    pub fn with_tun_source6(mut self, src: Ipv6Addr) -> Table {
        self.tun_source6 = src;
        self
    }

    /// The same table with the mark services' frames defined: `rules`
    /// gives each mark's rules (a mark service whose mark has none
    /// matches no frame). Their VIPs become the director's too.
    pub fn with_marks<'a>(mut self, rules: impl Fn(u32) -> &'a [MarkRule]) -> Table {
        // Each rule leads to its mark's service of the rule's family.
        let marked = self.services.iter().enumerate().flat_map(|(i, s)| {
            let v6 = s.key.addr.is_ipv6();
            let of = s.key.fwmark().map_or(&[][..], &rules);
            of.iter()
                .filter(move |r| r.vip.is_ipv6() == v6)
                .map(move |r| (r, i))
        });
        self.marks = MarkIndex::new(marked);
        for a in self.marks.vips() {
            match a {
                IpAddr::V4(a) => self.vips.push(a),
                IpAddr::V6(a) => self.vips6.push(a),
            }
        }
        self.vips.sort();
        self.vips.dedup();
        self.vips6.sort();
        self.vips6.dedup();
        self
    }

    /// The service of a client's frame of `protocol` to `addr`:`port`: a
    /// mark service whose mark the frame matches first, as IPVS looks a
    /// marked packet up by its mark first, else the `-t`/`-u` service.
    #[inline]
    pub fn lookup(&self, protocol: Protocol, addr: Ipv4Addr, port: u16) -> Option<usize> {
        self.marks
            .lookup(protocol, addr, port)
            .or_else(|| self.service_index(&ServiceKey::addr(protocol, addr, port)))
    }

    /// The service of a client's IPv6 frame: an IPv6 mark service whose
    /// mark it matches first, else the `-t`/`-u` service, as for IPv4.
    #[inline]
    pub fn lookup6(&self, protocol: Protocol, addr: Ipv6Addr, port: u16) -> Option<usize> {
        self.marks
            .lookup(protocol, addr, port)
            .or_else(|| self.service_index(&ServiceKey::addr(protocol, addr, port)))
    }

    /// The service of a connection to `addr` of either family, as its
    /// frames find it ([`lookup`](Self::lookup), [`lookup6`](Self::lookup6)).
    pub fn lookup_ip(&self, protocol: Protocol, addr: IpAddr, port: u16) -> Option<usize> {
        match addr {
            IpAddr::V4(a) => self.lookup(protocol, a, port),
            IpAddr::V6(a) => self.lookup6(protocol, a, port),
        }
    }

    /// The most specific route to `addr`, as the kernel would choose it
    /// (within the main table; the list is short, so a scan is enough).
    pub fn route(&self, addr: Ipv4Addr) -> Option<&LinkRoute> {
        self.routes.iter().find(|r| r.dst.contains(addr))
    }

    /// The service a frame to `key` belongs to: the one with its port,
    /// else a port-0 service of its VIP (as IPVS's `__ip_vs_service_find`
    /// looks for a port-0 service after the exact one).
    #[inline]
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        match self.index.get(key) {
            Some(&i) => Some(i),
            None if self.any_port => self.index.get(&ServiceKey { port: 0, ..*key }).copied(),
            None => None,
        }
    }

    /// True if `addr` is the VIP of any service: the director answers ARP for
    /// it and takes its traffic away from the kernel.
    #[inline]
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.binary_search(&addr).is_ok()
    }

    /// True if `addr` is an IPv6 VIP.
    #[inline]
    pub fn is_vip6(&self, addr: Ipv6Addr) -> bool {
        self.vips6.binary_search(&addr).is_ok()
    }

    pub fn vips6(&self) -> &[Ipv6Addr] {
        &self.vips6
    }

    /// The mark services' frames.
    pub fn marks(&self) -> &MarkIndex {
        &self.marks
    }

    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// The lookup table service `svc`'s scheduler built (empty for most).
    #[inline]
    pub fn buckets(&self, svc: usize) -> &[u16] {
        &self.buckets[svc]
    }

    /// What a new connection of service `svc` is scheduled among.
    #[inline]
    pub fn pool(&self, svc: usize) -> Option<Pool<'_>> {
        let s = self.services.get(svc)?;
        Some(Pool {
            dests: &s.dests,
            buckets: self.buckets.get(svc)?,
            flags: s.flags,
        })
    }

    /// Finds a real server by id, checking that the indexes a connection
    /// cached still point at it.
    #[inline]
    pub fn dest(&self, svc: u32, dest: u32, id: u32) -> Option<(&ServiceEntry, &DestEntry)> {
        let s = self.services.get(svc as usize)?;
        let d = s.dests.get(dest as usize)?;
        (d.id as u32 == id).then_some((s, d))
    }

    /// Where each real server id sits in this table, for remapping
    /// connections after a republication (by the id's low 32 bits, as a
    /// connection keeps it).
    pub fn dest_positions(&self) -> HashMap<u32, (u32, u32)> {
        let mut m = HashMap::new();
        for (si, s) in self.services.iter().enumerate() {
            for (di, d) in s.dests.iter().enumerate() {
                m.insert(d.id as u32, (si as u32, di as u32));
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_route_wins() {
        let r = |a: [u8; 4], len, link| LinkRoute {
            dst: Prefix {
                addr: Ipv4Addr::from(a),
                len,
            },
            link,
            gateway_mac: None,
        };
        let t = Table::default().with_routes(vec![
            r([0, 0, 0, 0], 0, 0),
            r([198, 18, 0, 0], 24, 1),
            r([198, 18, 0, 128], 25, 2),
        ]);
        let link = |a: [u8; 4]| t.route(Ipv4Addr::from(a)).map(|r| r.link);
        assert_eq!(link([198, 18, 0, 200]), Some(2));
        assert_eq!(link([198, 18, 0, 10]), Some(1));
        assert_eq!(link([203, 0, 113, 1]), Some(0));
        assert_eq!(Table::default().route(Ipv4Addr::LOCALHOST), None);
    }
}
