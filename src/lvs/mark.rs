//! Firewall marks as uvs defines them. IPVS serves a `-f MARK` service
//! the frames netfilter marked (`iptables -t mangle … -j MARK --set-mark
//! MARK`); uvs sees a frame before netfilter does, so a mark is defined
//! here instead, as the rules that would have set it: each [`MarkRule`]
//! is one such iptables (or, for an IPv6 VIP, ip6tables) rule (a protocol
//! or both, one VIP, port ranges), and a mark is the union of its rules.
//! A mark's IPv4 rules lead to its IPv4 service (`-f MARK`), its IPv6
//! rules to its IPv6 one (`-f MARK -6`), as IPVS looks a marked packet
//! up by its mark and family. What the data plane looks up per frame is a
//! [`MarkIndex`], built once per published table.

use crate::lvs::service::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// An inclusive range of destination ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// Takes in `o`, which starts at or after this range, if the two
    /// overlap or touch; false (and no change) otherwise.
    fn join(&mut self, o: &PortRange) -> bool {
        let joins = u32::from(o.lo) <= u32::from(self.hi) + 1;
        if joins {
            self.hi = self.hi.max(o.hi);
        }
        joins
    }

    fn overlaps(&self, o: &PortRange) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }
}

/// One rule of a mark: frames of `protocol` (TCP and UDP if `None`) to
/// `vip` on one of `ports` carry the mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarkRule {
    pub protocol: Option<Protocol>,
    /// IPv4 or IPv6: which family's service of the mark it serves.
    pub vip: IpAddr,
    /// Sorted, not overlapping, not empty.
    pub ports: Vec<PortRange>,
}

/// Why a mark's definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    #[error(
        "ports `{0}`: a list of ports and ranges, as iptables' --dports: `80,443` or `8000:8100` (or `8000-8100`)"
    )]
    Ports(String),
    #[error("protocol `{0}`: tcp, udp or all")]
    Protocol(String),
    #[error("{what} of {vip} is in mark {a} and in mark {b}: a frame can carry only one mark")]
    Overlap {
        what: String,
        vip: IpAddr,
        a: u32,
        b: u32,
    },
    #[error("mark 0 means no mark: a mark is 1 to 4294967295")]
    Zero,
}

/// Parses iptables' `--dports` list: ports and ranges (`a:b`, or `a-b`)
/// separated by commas; sorted and merged.
pub fn parse_ports(s: &str) -> Result<Vec<PortRange>, MarkError> {
    let bad = || MarkError::Ports(s.to_string());
    let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
    let mut v = Vec::new();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once([':', '-']) {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(part)?, port(part)?),
        };
        if lo > hi {
            return Err(bad());
        }
        v.push(PortRange { lo, hi });
    }
    v.sort();
    Ok(merged(v, PortRange::join))
}

/// `sorted`, each item that `join` takes into the one before it left out.
fn merged<T>(sorted: Vec<T>, join: impl Fn(&mut T, &T) -> bool) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(sorted.len());
    for r in sorted {
        if !out.last_mut().is_some_and(|l| join(l, &r)) {
            out.push(r);
        }
    }
    out
}

/// `tcp`, `udp`, or `all` (both; iptables' default without `-p`).
pub fn parse_protocol(s: &str) -> Result<Option<Protocol>, MarkError> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Some(Protocol::Tcp)),
        "udp" => Ok(Some(Protocol::Udp)),
        "all" | "any" => Ok(None),
        _ => Err(MarkError::Protocol(s.to_string())),
    }
}

/// The ports as iptables writes them: `80,443,8000:8100`.
pub struct Ports<'a>(pub &'a [PortRange]);

impl fmt::Display for Ports<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match r.lo == r.hi {
                true => write!(f, "{sep}{}", r.lo)?,
                false => write!(f, "{sep}{}:{}", r.lo, r.hi)?,
            }
        }
        Ok(())
    }
}

impl MarkRule {
    /// Its VIP if IPv4: what ARP claims (and conflict probes check).
    pub fn vip4(&self) -> Option<std::net::Ipv4Addr> {
        match self.vip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// The protocols it matches.
    pub fn protocols(&self) -> &'static [Protocol] {
        match self.protocol {
            Some(Protocol::Tcp) => &[Protocol::Tcp],
            Some(Protocol::Udp) => &[Protocol::Udp],
            Some(Protocol::Ip) | None => &[Protocol::Tcp, Protocol::Udp],
        }
    }

    /// The iptables rule (ip6tables for an IPv6 VIP) that would set this
    /// mark, for the docs, the importer and messages.
    pub fn iptables(&self, mark: u32) -> String {
        let p = match self.protocol {
            Some(p) => format!(" -p {}", p.name().to_ascii_lowercase()),
            None => String::new(),
        };
        let (tool, len) = match self.vip {
            IpAddr::V4(_) => ("iptables", 32),
            IpAddr::V6(_) => ("ip6tables", 128),
        };
        format!(
            "{tool} -t mangle -A PREROUTING -d {}/{len}{p} -m multiport --dports {} -j MARK --set-mark {mark}",
            self.vip,
            Ports(&self.ports)
        )
    }
}

/// Checks that no frame matches two marks (a mark with itself may
/// overlap: its rules are a union). `marks` is every mark's rules.
pub fn check_disjoint<'a>(
    marks: impl Iterator<Item = (u32, &'a [MarkRule])> + Clone,
) -> Result<(), MarkError> {
    for (a, ra) in marks.clone() {
        if a == 0 {
            return Err(MarkError::Zero);
        }
        for (b, rb) in marks.clone().filter(|(b, _)| *b > a) {
            for x in ra {
                for y in rb.iter().filter(|y| y.vip == x.vip) {
                    for p in x.protocols().iter().filter(|p| y.protocols().contains(p)) {
                        let clash = x
                            .ports
                            .iter()
                            .find_map(|r| y.ports.iter().find(|s| s.overlaps(r)).map(|s| (r, s)));
                        if let Some((r, s)) = clash {
                            let lo = r.lo.max(s.lo);
                            return Err(MarkError::Overlap {
                                what: format!("{} port {lo}", p.name()),
                                vip: x.vip,
                                a,
                                b,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// One range of a mark in the index: its ports and the service it leads
/// to.
#[derive(Debug, Clone, Copy)]
struct Slot {
    ports: PortRange,
    svc: u32,
}

/// Per frame: which mark service a (protocol, VIP, port) belongs to. Each
/// (protocol, VIP) names its sorted, disjoint ranges in one vector: one
/// hash lookup and a binary search, no allocation.
#[derive(Debug, Clone, Default)]
pub struct MarkIndex {
    by_vip: HashMap<(Protocol, IpAddr), (u32, u32), foldhash::fast::RandomState>,
    slots: Vec<Slot>,
}

impl MarkIndex {
    /// The index of `rules`: each a rule of a mark and the index of the
    /// mark's service of the rule's family in the table. The marks must
    /// be disjoint from each other ([`check_disjoint`]).
    pub fn new<'a>(rules: impl Iterator<Item = (&'a MarkRule, usize)>) -> MarkIndex {
        let mut by: HashMap<(Protocol, IpAddr), Vec<Slot>> = HashMap::new();
        for (r, svc) in rules {
            for p in r.protocols() {
                let v = by.entry((*p, r.vip)).or_default();
                v.extend(r.ports.iter().map(|&ports| Slot {
                    ports,
                    svc: svc as u32,
                }));
            }
        }
        let mut m = MarkIndex::default();
        for (k, mut v) in by {
            // One mark's rules may overlap (as iptables rules setting one
            // mark may); joined, the ranges are disjoint and sorted by
            // both ends, as the binary search in `lookup` needs.
            v.sort_by_key(|s| s.ports);
            let v = merged(v, |l, r| l.svc == r.svc && l.ports.join(&r.ports));
            let start = m.slots.len() as u32;
            m.slots.extend(v);
            m.by_vip.insert(k, (start, m.slots.len() as u32));
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The VIPs the marks name.
    pub fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_vip.keys().map(|(_, a)| *a)
    }

    /// Every range: protocol, VIP, first and last port, service.
    pub fn ranges(&self) -> impl Iterator<Item = (Protocol, IpAddr, u16, u16, usize)> + '_ {
        self.by_vip.iter().flat_map(|(&(p, a), &(start, end))| {
            self.slots[start as usize..end as usize]
                .iter()
                .map(move |s| (p, a, s.ports.lo, s.ports.hi, s.svc as usize))
        })
    }

    /// The mark service of a frame of `protocol` to `addr`:`port`.
    #[inline]
    pub fn lookup(&self, protocol: Protocol, addr: impl Into<IpAddr>, port: u16) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let &(start, end) = self.by_vip.get(&(protocol, addr.into()))?;
        let v = &self.slots[start as usize..end as usize];
        let i = v.partition_point(|s| s.ports.hi < port);
        v.get(i)
            .filter(|s| s.ports.lo <= port)
            .map(|s| s.svc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The index of each mark's rules leading to its service.
    fn index(marks: &[(&[MarkRule], usize)]) -> MarkIndex {
        MarkIndex::new(
            marks
                .iter()
                .flat_map(|(r, i)| r.iter().map(move |r| (r, *i))),
        )
    }

    fn rule(p: Option<Protocol>, ports: &str) -> MarkRule {
        MarkRule {
            protocol: p,
            vip: Ipv4Addr::new(198, 18, 0, 100).into(),
            ports: parse_ports(ports).unwrap(),
        }
    }

    #[test]
    fn ports_parse_as_iptables_writes_them() {
        let r = parse_ports("443,80,8000:8100,8050-8200,8201").unwrap();
        assert_eq!(Ports(&r).to_string(), "80,443,8000:8201");
        for bad in ["", "80,", "x", "90:80", "70000", "1:2:3"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_protocol("TCP").unwrap(), Some(Protocol::Tcp));
        assert_eq!(parse_protocol("all").unwrap(), None);
        assert!(parse_protocol("sctp").is_err());
    }

    #[test]
    fn a_frame_finds_the_service_of_its_marks_range() {
        let a = [rule(Some(Protocol::Tcp), "80,443")];
        let b = [rule(None, "1000:2000")];
        let m = index(&[(&a[..], 3), (&b[..], 7)]);
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(m.lookup(Protocol::Tcp, vip, 80), Some(3));
        assert_eq!(m.lookup(Protocol::Tcp, vip, 443), Some(3));
        assert_eq!(m.lookup(Protocol::Udp, vip, 443), None);
        assert_eq!(m.lookup(Protocol::Tcp, vip, 81), None);
        assert_eq!(m.lookup(Protocol::Udp, vip, 1000), Some(7));
        assert_eq!(m.lookup(Protocol::Tcp, vip, 2000), Some(7));
        assert_eq!(m.lookup(Protocol::Tcp, vip, 2001), None);
        assert_eq!(
            m.lookup(Protocol::Tcp, Ipv4Addr::new(198, 18, 0, 1), 80),
            None
        );
        assert!(
            MarkIndex::default()
                .lookup(Protocol::Tcp, vip, 80)
                .is_none()
        );
    }

    /// Rules of one mark may overlap, as iptables rules setting one mark
    /// may: every port of every rule is found, and no other.
    #[test]
    fn one_marks_overlapping_rules_find_every_port() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let one = [
            rule(Some(Protocol::Tcp), "80:100,1:1000"),
            rule(None, "90:95,10:20,30:40"),
            rule(Some(Protocol::Tcp), "1001"),
        ];
        let other = [rule(Some(Protocol::Tcp), "2000")];
        let m = index(&[(&one[..], 0), (&other[..], 1)]);
        for port in [1, 25, 98, 100, 500, 1000, 1001] {
            assert_eq!(m.lookup(Protocol::Tcp, vip, port), Some(0), "port {port}");
        }
        assert_eq!(m.lookup(Protocol::Tcp, vip, 2000), Some(1));
        assert_eq!(m.lookup(Protocol::Tcp, vip, 1002), None);
        assert_eq!(m.lookup(Protocol::Udp, vip, 25), None);
        assert_eq!(m.lookup(Protocol::Udp, vip, 35), Some(0));
    }

    #[test]
    fn two_marks_may_not_match_one_frame() {
        let a = [rule(Some(Protocol::Tcp), "80,443")];
        let b = [rule(None, "400:500")];
        let c = [rule(Some(Protocol::Udp), "443")];
        let e = check_disjoint([(1, &a[..]), (2, &b[..])].into_iter()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TCP port 443 of 198.18.0.100 is in mark 1 and in mark 2: a frame can carry only one mark"
        );
        check_disjoint([(1, &a[..]), (3, &c[..])].into_iter()).unwrap();
        check_disjoint([(1, &a[..]), (1, &a[..])].into_iter().take(1)).unwrap();
        assert!(check_disjoint([(0, &a[..])].into_iter()).is_err());
        assert_eq!(
            a[0].iptables(100),
            "iptables -t mangle -A PREROUTING -d 198.18.0.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 100"
        );
    }

    /// A mark's IPv6 rules are looked up by IPv6 VIP and lead to the
    /// mark's IPv6 service; the IPv4 rules of the same mark to its IPv4
    /// one. An IPv6 rule is written as ip6tables would set it.
    #[test]
    fn ipv6_rules_find_their_own_service() {
        let vip6: Ipv6Addr = "2001:2::100".parse().unwrap();
        let v6 = MarkRule {
            vip: vip6.into(),
            ..rule(Some(Protocol::Tcp), "80,443")
        };
        let v4 = rule(Some(Protocol::Tcp), "80,443");
        let m = MarkIndex::new([(&v4, 1), (&v6, 2)].into_iter());
        assert_eq!(m.lookup(Protocol::Tcp, vip6, 443), Some(2));
        assert_eq!(
            m.lookup(Protocol::Tcp, Ipv4Addr::new(198, 18, 0, 100), 443),
            Some(1)
        );
        assert_eq!(m.lookup(Protocol::Udp, vip6, 443), None);
        assert_eq!(m.lookup(Protocol::Tcp, vip6, 8080), None);
        assert!(m.vips().any(|a| a == IpAddr::V6(vip6)));
        // One address of each family: no overlap between them.
        check_disjoint([(1, &[v4][..]), (2, &[v6.clone()][..])].into_iter()).unwrap();
        assert_eq!(
            v6.iptables(7),
            "ip6tables -t mangle -A PREROUTING -d 2001:2::100/128 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 7"
        );
    }
}
