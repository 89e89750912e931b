//! What the XDP program's claim maps (`vips`, `nat_servers`, `locals`)
//! should hold for a published table, and how they are brought there: by
//! difference, so a frame in flight never meets an empty map.

use super::Error;
use super::maps::RsKey;
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::table::Table;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The most ports of one range claimed for a port-0 NAT server of a mark
/// service.
const MAX_MARK_PORTS: u16 = 1024;

/// What the maps should hold for a table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Claims {
    vips: BTreeSet<[u8; 4]>,
    nat: BTreeSet<RsKey>,
    locals: BTreeSet<[u8; 4]>,
}

impl Claims {
    pub(super) fn of(table: &Table, locals: &[Ipv4Addr]) -> Claims {
        let mut c = Claims {
            locals: locals.iter().map(|a| a.octets()).collect(),
            ..Claims::default()
        };
        c.vips = table.vips().iter().map(|a| a.octets()).collect();
        let rs = |addr: Ipv4Addr, port: u16, proto: Protocol| RsKey {
            addr: addr.octets(),
            port: port.to_be_bytes(),
            proto: proto.number(),
            pad: 0,
        };
        // IPv4 NAT servers: the programs' keys are IPv4.
        let masq = |s: usize| {
            let dests = &table.services[s].dests;
            dests
                .iter()
                .filter(|d| d.forward == Forward::Masq)
                .filter_map(|d| match d.addr {
                    std::net::IpAddr::V4(a) => Some((a, d.port)),
                    std::net::IpAddr::V6(_) => None,
                })
        };
        for (i, s) in table.services.iter().enumerate() {
            if s.key.fwmark().is_none() {
                c.nat
                    .extend(masq(i).map(|(a, port)| rs(a, port, s.key.protocol)));
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
        sync_set(bpf, "locals", &self.locals, &want.locals)
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
mod tests {
    use super::*;
    use crate::lvs::service::{SchedulerKind, ServiceKey};
    use crate::lvs::table::{DestEntry, ServiceEntry};
    use crate::wire::MacAddr;

    fn service(proto: Protocol, vip: [u8; 4], dests: &[([u8; 4], u16, Forward)]) -> ServiceEntry {
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
        let c = Claims::of(&t, &[[198, 18, 2, 1].into()]);
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
        assert_eq!(std::mem::size_of::<RsKey>(), 8);
    }
}
