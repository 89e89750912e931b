//! What the XDP program's claim maps (`vips`, `nat_servers`, `locals` and
//! their IPv6 twins `vips6`, `nat_servers6`, `locals6`) should hold for a
//! published table, and how they are brought there: by difference, so a
//! frame in flight never meets an empty map.

use super::Error;
use super::maps::{Rs6Key, RsKey};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::table::Table;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

/// The most ports of one range claimed for a port-0 NAT server of a mark
/// service.
const MAX_MARK_PORTS: u16 = 1024;

/// What the maps should hold for a table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Claims {
    vips: BTreeSet<[u8; 4]>,
    nat: BTreeSet<RsKey>,
    locals: BTreeSet<[u8; 4]>,
    vips6: BTreeSet<[u8; 16]>,
    nat6: BTreeSet<Rs6Key>,
    locals6: BTreeSet<[u8; 16]>,
}

impl Claims {
    pub(super) fn of(table: &Table, locals: &[IpAddr]) -> Claims {
        let mut c = Claims::default();
        for a in locals {
            match a {
                IpAddr::V4(a) => c.locals.insert(a.octets()),
                IpAddr::V6(a) => c.locals6.insert(a.octets()),
            };
        }
        c.vips = table.vips().iter().map(|a| a.octets()).collect();
        c.vips6 = table.vips6().iter().map(|a| a.octets()).collect();
        let rs = |addr: Ipv4Addr, port: u16, proto: Protocol| RsKey {
            addr: addr.octets(),
            port: port.to_be_bytes(),
            proto: proto.number(),
            pad: 0,
        };
        let masq_all = |s: usize| {
            let dests = &table.services[s].dests;
            dests
                .iter()
                .filter(|d| d.forward == Forward::Masq)
                .map(|d| (d.addr, d.port))
        };
        // The IPv4 ones, for the mark services below.
        let masq = |s: usize| {
            masq_all(s).filter_map(|(a, port)| match a {
                IpAddr::V4(a) => Some((a, port)),
                IpAddr::V6(_) => None,
            })
        };
        for (i, s) in table.services.iter().enumerate() {
            if s.key.fwmark().is_some() {
                continue;
            }
            let proto = s.key.protocol.number();
            for (a, port) in masq_all(i) {
                match a {
                    IpAddr::V4(a) => c.nat.insert(rs(a, port, s.key.protocol)),
                    IpAddr::V6(a) => c.nat6.insert(Rs6Key {
                        addr: a.octets(),
                        port: port.to_be_bytes(),
                        proto,
                        pad: 0,
                    }),
                };
            }
        }
        // A mark service's NAT server replies from its port, or with port
        // 0 from the port the client asked for (each of the mark's, up to
        // a bound: beyond it the replies come through the packet socket).
        for (proto, _, lo, hi, svc) in table.marks().ranges() {
            for (a, port) in masq(svc) {
                let ports = match port {
                    0 => lo..=hi.min(lo.saturating_add(MAX_MARK_PORTS - 1)),
                    p => p..=p,
                };
                c.nat.extend(ports.map(|p| rs(a, p, proto)));
            }
        }
        c
    }

    /// Makes `bpf`'s maps hold `want` where they held `self`.
    pub(super) fn sync(&self, bpf: &mut aya::Ebpf, want: &Claims) -> Result<(), Error> {
        sync_set(bpf, "vips", &self.vips, &want.vips)?;
        sync_set(bpf, "nat_servers", &self.nat, &want.nat)?;
        sync_set(bpf, "locals", &self.locals, &want.locals)?;
        sync_set(bpf, "vips6", &self.vips6, &want.vips6)?;
        sync_set(bpf, "nat_servers6", &self.nat6, &want.nat6)?;
        sync_set(bpf, "locals6", &self.locals6, &want.locals6)
    }
}

/// Inserts what is new and removes what is gone.
fn sync_set<K: aya::Pod + Ord>(
    bpf: &mut aya::Ebpf,
    name: &str,
    held: &BTreeSet<K>,
    want: &BTreeSet<K>,
) -> Result<(), Error> {
    let map = bpf.map_mut(name).ok_or_else(|| Error::no_map(name))?;
    let mut m: aya::maps::HashMap<_, K, u8> = map.try_into().map_err(Error::map(name))?;
    for k in want.difference(held) {
        m.insert(k, 1, 0).map_err(Error::map(name))?;
    }
    for k in held.difference(want) {
        // Already gone is fine.
        let _ = m.remove(k);
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::lvs::service::{SchedulerKind, ServiceKey};
    use crate::lvs::table::{DestEntry, ServiceEntry};
    use crate::wire::MacAddr;

    /// A service on `vip` with these real servers (address, port, method).
    pub(in crate::io::bpf) fn service(
        proto: Protocol,
        vip: [u8; 4],
        dests: &[([u8; 4], u16, Forward)],
    ) -> ServiceEntry {
        ServiceEntry {
            id: 1,
            key: ServiceKey::addr(proto, Ipv4Addr::from(vip), 80),
            scheduler: SchedulerKind::Rr,
            flags: Default::default(),
            ops: false,
            persistence: None,
            epoch: 0,
            log: Default::default(),
            dests: dests
                .iter()
                .map(|&(a, port, forward)| DestEntry {
                    id: 1,
                    addr: a.into(),
                    port,
                    forward,
                    weight: 1,
                    listed_weight: 1,
                    last_weight: 1,
                    mac: MacAddr::ZERO,
                    link: 0,
                    state: Default::default(),
                })
                .collect(),
            stats: Default::default(),
        }
    }

    #[test]
    fn the_maps_claim_every_vip_and_only_nat_servers_replies() {
        let t = Table::new(
            1,
            vec![
                service(
                    Protocol::Tcp,
                    [198, 18, 0, 100],
                    &[([198, 18, 0, 11], 80, Forward::Route)],
                ),
                service(
                    Protocol::Udp,
                    [198, 18, 0, 101],
                    &[
                        ([198, 18, 2, 11], 5353, Forward::Masq),
                        ([198, 18, 0, 12], 53, Forward::Tunnel),
                    ],
                ),
            ],
            Default::default(),
        );
        let local6: std::net::Ipv6Addr = "2001:2:0:2::1".parse().unwrap();
        let c = Claims::of(&t, &[Ipv4Addr::new(198, 18, 2, 1).into(), local6.into()]);
        assert_eq!(
            c.vips,
            [[198, 18, 0, 100], [198, 18, 0, 101]].into_iter().collect()
        );
        // Network order, as the program reads the headers.
        let nat: Vec<_> = c.nat.into_iter().collect();
        assert_eq!(
            nat,
            vec![RsKey {
                addr: [198, 18, 2, 11],
                port: [0x14, 0xe9],
                proto: 17,
                pad: 0
            }]
        );
        assert_eq!(c.locals, [[198, 18, 2, 1]].into_iter().collect());
        assert_eq!(c.locals6, [local6.octets()].into_iter().collect());
        assert!(c.vips6.is_empty() && c.nat6.is_empty());
        assert_eq!(std::mem::size_of::<RsKey>(), 8);
        assert_eq!(std::mem::size_of::<Rs6Key>(), 20);
    }

    #[test]
    fn ipv6_vips_and_nat66_servers_are_claimed_in_their_own_maps() {
        let vip6: std::net::Ipv6Addr = "2001:2::100".parse().unwrap();
        let rip6: std::net::Ipv6Addr = "2001:2:0:2::11".parse().unwrap();
        let mut s = service(
            Protocol::Tcp,
            [0; 4],
            &[([198, 18, 0, 11], 80, Forward::Route)],
        );
        s.key = ServiceKey::addr(Protocol::Tcp, IpAddr::from(vip6), 80);
        s.dests[0].addr = rip6.into();
        s.dests[0].port = 8080;
        s.dests[0].forward = Forward::Masq;
        let t = Table::new(1, vec![s], Default::default());
        let c = Claims::of(&t, &[]);
        assert_eq!(c.vips6, [vip6.octets()].into_iter().collect());
        assert!(c.vips.is_empty() && c.nat.is_empty());
        let nat6: Vec<_> = c.nat6.into_iter().collect();
        assert_eq!(
            nat6,
            vec![Rs6Key {
                addr: rip6.octets(),
                port: [0x1f, 0x90],
                proto: 6,
                pad: 0
            }]
        );
    }
}
