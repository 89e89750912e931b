//! `uvs probe`: finds out, before a forwarding method is chosen, whether
//! the network between the director and a real server carries what DR and
//! TUN send. It automates the tcpdump-on-both-ends investigation: the
//! director sends one marked UDP probe per [`Case`], and a responder on the
//! real server reports which ones reached its NIC ("arrived", seen by a
//! packet socket before the kernel can drop them) and which its kernel
//! accepted ("delivered" to a UDP socket). A case that never arrives was
//! dropped by the network (a cloud's anti-spoofing, typically); one that
//! arrives but is not delivered was dropped by the server's own settings.

mod error;
pub mod responder;
pub mod sender;

pub use error::Error;

use crate::wire::udp::UdpRepr;
use crate::wire::{self, EtherType, Ipv4Packet, MacAddr, ip_proto};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Default TCP port of the responder's control connection; probes go to
/// UDP port `port + 1`.
pub const DEFAULT_PORT: u16 = 7410;

/// The source a client would have: TEST-NET-1 (RFC 5737), never routed.
pub const DEFAULT_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

const MAGIC: &[u8] = b"uvs-probe ";

/// One kind of frame the director can send to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// Director to the server's own address: the layer-2 path works.
    Plain,
    /// What DR really sends: a client's source address to the VIP, from the
    /// director's MAC. Clouds' anti-spoofing drops exactly this.
    DrForeign,
    /// VIP to VIP: accepted only with accept_local.
    DrVip,
    /// Director to the VIP: the VIP is configured on the server.
    DrDirector,
    /// IP-in-IP from the director to the server, client to VIP inside.
    Tun,
}

impl Case {
    pub const ALL: [Case; 5] = [
        Case::Plain,
        Case::DrForeign,
        Case::DrVip,
        Case::DrDirector,
        Case::Tun,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Plain => "plain",
            Case::DrForeign => "dr-foreign",
            Case::DrVip => "dr-vip",
            Case::DrDirector => "dr-director",
            Case::Tun => "tun",
        }
    }

    pub fn from_name(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Case::Plain => "plain (director -> real server)",
            Case::DrForeign => "DR, foreign source (client -> VIP)",
            Case::DrVip => "DR, VIP source (VIP -> VIP)",
            Case::DrDirector => "DR, director source (director -> VIP)",
            Case::Tun => "TUN (IP-in-IP, client -> VIP inside)",
        }
    }

    /// DR cases go on-link to the real server's MAC with the VIP as
    /// destination; the others are addressed to the real server itself.
    pub fn is_dr(self) -> bool {
        matches!(self, Case::DrForeign | Case::DrVip | Case::DrDirector)
    }
}

/// The addresses a probe run needs.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub director_mac: MacAddr,
    /// MAC of the next hop towards the real server (itself, or a router).
    pub hop_mac: MacAddr,
    pub director: Ipv4Addr,
    pub rip: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub client: Ipv4Addr,
    pub port: u16,
}

/// The payload that marks a probe: magic, run nonce, case.
pub fn marker(nonce: u64, case: Case) -> String {
    format!("uvs-probe {nonce:016x} {}", case.name())
}

/// Parses a probe payload; anything else is `None`.
pub fn parse_marker(payload: &[u8]) -> Option<(u64, Case)> {
    let rest = payload.strip_prefix(MAGIC)?;
    let s = std::str::from_utf8(rest).ok()?;
    let (n, c) = s.split_once(' ')?;
    if n.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(n, 16).ok()?,
        Case::from_name(c.trim_end())?,
    ))
}

/// Writes IPv4 + UDP from `src` to `dst`, `port` to `port`, carrying
/// `payload` into `out`; returns the length.
fn emit_udp(
    out: &mut [u8],
    (src, dst): (Ipv4Addr, Ipv4Addr),
    port: u16,
    payload: &[u8],
) -> Option<usize> {
    let udp = UdpRepr {
        src_port: port,
        dst_port: port,
    };
    let ip_hl = wire::ipv4::HEADER_LEN;
    let udp_len = udp.emit(out.get_mut(ip_hl..)?, src, dst, payload).ok()?;
    let repr = wire::ipv4::Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::UDP,
        payload_len: udp_len,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
    };
    repr.emit(&mut out[..ip_hl]).ok()?;
    Some(ip_hl + udp_len)
}

/// Builds the Ethernet frame for one case into `out`; returns its length.
/// Every case goes to the next hop's MAC: DR cases are only sent to an
/// on-link real server, whose next hop is the server itself.
pub fn build(case: Case, a: &Addrs, nonce: u64, out: &mut [u8]) -> Option<usize> {
    const ETH: usize = wire::ethernet::HEADER_LEN;
    if out.len() < ETH {
        return None;
    }
    wire::ethernet::emit_header(out, a.hop_mac, a.director_mac, EtherType::IPV4);
    let m = marker(nonce, case);
    let ends = match case {
        Case::Plain => (a.director, a.rip),
        Case::DrForeign => (a.client, a.vip),
        Case::DrVip => (a.vip, a.vip),
        Case::DrDirector => (a.director, a.vip),
        Case::Tun => {
            // Built as the inner packet, then wrapped as the director's TUN
            // forwarding does (the probe's inner packet has DF, so the
            // outer header has it too, with id 0).
            let mut inner = [0u8; 128];
            let n = emit_udp(&mut inner, (a.client, a.vip), a.port, m.as_bytes())?;
            let tun = wire::ipip::IpipRepr {
                src: a.director,
                dst: a.rip,
            };
            return tun.emit(&inner[..n], out, ETH, &mut 0).ok();
        }
    };
    Some(ETH + emit_udp(&mut out[ETH..], ends, a.port, m.as_bytes())?)
}

/// Finds a probe in an Ethernet frame seen on the wire: plain UDP to the
/// probe port, or the same inside IP-in-IP (then the case must be `Tun`).
/// Never panics on garbage.
pub fn recognise(frame: &[u8], port: u16) -> Option<(u64, Case)> {
    let eth = wire::EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let (ip, tunnelled) = if ip.protocol() == ip_proto::IPIP {
        // The same unwrapping `uvs decap` does.
        let inner = Ipv4Packet::new_checked(wire::ipip::inner(eth.payload())?).ok()?;
        (inner, true)
    } else {
        (ip, false)
    };
    if ip.protocol() != ip_proto::UDP || ip.is_fragment() {
        return None;
    }
    let udp = wire::udp::UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != port {
        return None;
    }
    let (nonce, case) = parse_marker(udp.payload())?;
    ((case == Case::Tun) == tunnelled).then_some((nonce, case))
}

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub case: Case,
    /// False when the case could not be sent (DR to a server behind a router).
    pub sent: bool,
    pub arrived: bool,
    pub delivered: bool,
}

/// A forwarding method the probe judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Dr,
    Tun,
}

/// The conclusion drawn from the outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub dr_works: bool,
    pub tun_works: bool,
    /// One sentence per finding, most important first.
    pub findings: Vec<String>,
    pub recommendation: String,
}

fn get(o: &[Outcome], c: Case) -> Outcome {
    o.iter().copied().find(|x| x.case == c).unwrap_or(Outcome {
        case: c,
        sent: false,
        arrived: false,
        delivered: false,
    })
}

/// Judges DR and TUN from what arrived and what was delivered.
pub fn verdict(o: &[Outcome], vip: Ipv4Addr) -> Verdict {
    let plain = get(o, Case::Plain);
    let foreign = get(o, Case::DrForeign);
    let vsrc = get(o, Case::DrVip);
    let dsrc = get(o, Case::DrDirector);
    let tun = get(o, Case::Tun);
    let mut f = Vec::new();
    if !plain.arrived {
        f.push(
            "none of the plain probes from the director reached the real server: the path between \
             them (or the responder's capture) is broken, so nothing else can be judged"
                .to_string(),
        );
        return Verdict {
            dr_works: false,
            tun_works: false,
            findings: f,
            recommendation: "fix the path between the director and the real server first".into(),
        };
    }
    if !plain.delivered {
        f.push(
            "plain probes arrive but the real server's kernel does not deliver them: a firewall on \
             the server filters the probe port"
                .into(),
        );
    }
    let dr_works = foreign.sent && foreign.delivered;
    if !foreign.sent {
        f.push(
            "the real server is not on the director's segment (its route goes via a router): DR \
             cannot reach it, only TUN can"
                .into(),
        );
    } else if !foreign.arrived {
        f.push(
            "the network drops frames with foreign source addresses: DR will not work here, use \
             TUN (-i)"
                .into(),
        );
    } else if !foreign.delivered {
        if dsrc.arrived && !dsrc.delivered {
            f.push(format!(
                "the VIP {vip} is not configured on the real server: add it as a /32 on lo \
                 (`ip addr add {vip}/32 dev lo`) with arp_ignore=1 and arp_announce=2"
            ));
        } else {
            f.push(format!(
                "frames with a client's source address reach the real server but its kernel drops \
                 them (rp_filter, or a firewall): run `uvs audit --mode dr --vip {vip}` there"
            ));
        }
    }
    if vsrc.sent && vsrc.arrived && !vsrc.delivered {
        f.push(
            "packets sourced from the VIP are dropped as martians (accept_local=0): harmless for \
             client traffic, but needed if the director and a real server share a host"
                .into(),
        );
    } else if vsrc.sent && !vsrc.arrived && foreign.arrived {
        f.push("the network drops frames sourced from the VIP on the director's port".into());
    }
    let tun_works = tun.delivered;
    if !tun.arrived {
        f.push(
            "the network drops IP-in-IP (protocol 4) between the director and the real server"
                .into(),
        );
    } else if !tun.delivered {
        f.push(format!(
            "IP-in-IP arrives but is not decapsulated and delivered: bring up tunl0 with the VIP on \
             it (ipip module) or run `uvs decap`, and keep rp_filter 0 or 2 (see `uvs audit --mode \
             tun --vip {vip}`)"
        ));
    }
    let recommendation = match (dr_works, tun_works) {
        (true, true) => "both DR (-g) and TUN (-i) work here; DR is cheaper (no encapsulation, no \
                         20-byte MTU loss)"
            .to_string(),
        (true, false) => "use DR (-g); TUN does not work to this real server".into(),
        (false, true) => "use TUN (-i); DR will not work to this real server".into(),
        (false, false) => "neither DR nor TUN works to this real server yet".into(),
    };
    Verdict {
        dr_works,
        tun_works,
        findings: f,
        recommendation,
    }
}

/// The table and verdict as the operator reads them.
pub fn render(o: &[Outcome], v: &Verdict) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{:<42} {:<9} real server", "case", "network");
    for x in o {
        let (net, srv) = match (x.sent, x.arrived, x.delivered) {
            (false, _, _) => ("not sent", "-"),
            (true, false, _) => ("dropped", "-"),
            (true, true, true) => ("arrived", "delivered"),
            (true, true, false) => ("arrived", "dropped"),
        };
        let _ = writeln!(s, "{:<42} {net:<9} {srv}", x.case.describe());
    }
    let _ = writeln!(s);
    for f in &v.findings {
        let _ = writeln!(s, "- {f}");
    }
    let _ = writeln!(
        s,
        "DR: {}   TUN: {}",
        if v.dr_works { "works" } else { "fails" },
        if v.tun_works { "works" } else { "fails" }
    );
    let _ = writeln!(s, "verdict: {}", v.recommendation);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Addrs {
        Addrs {
            director_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            hop_mac: MacAddr([2, 0, 0, 0, 0, 11]),
            director: Ipv4Addr::new(198, 18, 0, 2),
            rip: Ipv4Addr::new(198, 18, 0, 11),
            vip: Ipv4Addr::new(198, 18, 0, 100),
            client: DEFAULT_CLIENT,
            port: 7411,
        }
    }

    #[test]
    fn every_case_is_recognised_and_checksummed() {
        let a = addrs();
        for c in Case::ALL {
            let mut b = [0u8; 256];
            let n = build(c, &a, 0xdead_beef, &mut b).unwrap();
            assert_eq!(recognise(&b[..n], 7411), Some((0xdead_beef, c)), "{c:?}");
            assert_eq!(recognise(&b[..n], 7412), None);
            // Independent oracle: etherparse agrees on addresses and checksums.
            let p = etherparse::SlicedPacket::from_ethernet(&b[..n]).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!("not IPv4")
            };
            let (s, d) = (ip.header().source_addr(), ip.header().destination_addr());
            match c {
                Case::Plain | Case::Tun => assert_eq!((s, d), (a.director, a.rip)),
                Case::DrForeign => assert_eq!((s, d), (a.client, a.vip)),
                Case::DrVip => assert_eq!((s, d), (a.vip, a.vip)),
                Case::DrDirector => assert_eq!((s, d), (a.director, a.vip)),
            }
            let inner = if c == Case::Tun { 34 + 20 } else { 34 };
            let ih = etherparse::Ipv4HeaderSlice::from_slice(&b[inner - 20..n]).unwrap();
            let udp = etherparse::UdpHeaderSlice::from_slice(&b[inner..n]).unwrap();
            let want = udp
                .to_header()
                .calc_checksum_ipv4(&ih.to_header(), &b[inner + 8..n])
                .unwrap();
            assert_eq!(udp.checksum(), want, "{c:?}");
        }
    }

    #[test]
    fn recognise_rejects_garbage_and_truncation() {
        let a = addrs();
        let mut b = [0u8; 256];
        let n = build(Case::Tun, &a, 1, &mut b).unwrap();
        for cut in 0..n {
            let _ = recognise(&b[..cut], 7411);
        }
        assert!(recognise(&b[..n - 1], 7411).is_none());
        // A "tun" marker outside a tunnel, or a plain marker inside, is not a probe.
        let n = build(Case::Plain, &a, 1, &mut b).unwrap();
        let s = marker(1, Case::Tun);
        b[n - s.len()..n].copy_from_slice(s.as_bytes());
        assert_eq!(recognise(&b[..n], 7411), None);
        assert_eq!(parse_marker(b"uvs-probe 12 plain"), None);
        assert_eq!(parse_marker(b"uvs-probe 000000000000000g plain"), None);
        assert_eq!(parse_marker(b"uvs-probe 0000000000000001 nope"), None);
        assert_eq!(
            parse_marker(b"uvs-probe 0000000000000001 tun"),
            Some((1, Case::Tun))
        );
    }

    /// The five cases in order (plain, DR with a foreign source, DR to
    /// the VIP, DR from the director, TUN): which arrived, which were
    /// delivered to a socket.
    fn five(arrived: [bool; 5], delivered: [bool; 5]) -> Vec<Outcome> {
        let cases = [
            Case::Plain,
            Case::DrForeign,
            Case::DrVip,
            Case::DrDirector,
            Case::Tun,
        ];
        let spec: Vec<_> = (0..5)
            .map(|i| (cases[i], arrived[i], delivered[i]))
            .collect();
        outcomes(&spec)
    }

    fn outcomes(spec: &[(Case, bool, bool)]) -> Vec<Outcome> {
        spec.iter()
            .map(|&(case, arrived, delivered)| Outcome {
                case,
                sent: true,
                arrived,
                delivered,
            })
            .collect()
    }

    #[test]
    fn verdict_for_a_network_that_drops_spoofed_sources() {
        let o = five(
            [true, false, true, true, true],
            [true, false, true, true, true],
        );
        let v = verdict(&o, addrs().vip);
        assert!(!v.dr_works && v.tun_works);
        assert!(v.findings[0].contains("drops frames with foreign source addresses"));
        assert!(v.recommendation.starts_with("use TUN (-i)"));
        let r = render(&o, &v);
        assert!(
            r.contains("DR, foreign source (client -> VIP)         dropped"),
            "{r}"
        );
    }

    #[test]
    fn verdict_tells_network_drops_from_server_drops() {
        let vip = addrs().vip;
        // Everything arrives; no decapsulator, VIP missing on the server.
        let delivered = [true, false, false, false, false];
        let v = verdict(&five([true; 5], delivered), vip);
        assert!(!v.dr_works && !v.tun_works);
        assert!(
            v.findings
                .iter()
                .any(|f| f.contains("not configured on the real server"))
        );
        assert!(v.findings.iter().any(|f| f.contains("uvs decap")));
        assert!(v.findings.iter().any(|f| f.contains("accept_local")));
        // Both work.
        let delivered = [true, true, false, true, true];
        let v = verdict(&five([true; 5], delivered), vip);
        assert!(v.dr_works && v.tun_works);
        assert!(v.recommendation.starts_with("both"));
        // Nothing arrives at all: no conclusion about either.
        let v = verdict(&outcomes(&[(Case::Plain, false, false)]), vip);
        assert!(!v.dr_works && !v.tun_works);
        assert!(v.findings[0].contains("nothing else can be judged"));
    }
}
