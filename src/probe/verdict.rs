//! What a run's outcomes say about DR and TUN: findings in the order an
//! operator fixes them, and the table they read. The family of the real
//! server and of the VIP only change the words (the encapsulation, the
//! address to add, rp_filter for IPv4 only); the reasoning is one.

use super::{Case, Outcome};
use serde::Serialize;
use std::net::IpAddr;

/// The conclusion drawn from the outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub dr_works: bool,
    pub tun_works: bool,
    /// The TUN case's encapsulation: "IP-in-IP", "IPv6-in-IPv6", ...
    pub tunnel: &'static str,
    /// One sentence per finding, most important first.
    pub findings: Vec<String>,
    pub recommendation: String,
}

/// The encapsulation TUN uses between a real server's and a VIP's
/// families, as findings name it.
struct Tunnel {
    name: &'static str,
    /// The protocol number (IPv4) or next header (IPv6) that marks it.
    number: &'static str,
    /// What decapsulates it in the kernel.
    device: &'static str,
    /// The outer header's length.
    overhead: usize,
}

impl Tunnel {
    fn of(rip: IpAddr, vip: IpAddr) -> Tunnel {
        let (name, number, device, overhead) = match (rip, vip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => ("IP-in-IP", "protocol 4", "tunl0 (ipip module)", 20),
            (IpAddr::V4(_), IpAddr::V6(_)) => (
                "IPv6-in-IPv4",
                "protocol 41",
                "a sit device (sit module)",
                20,
            ),
            (IpAddr::V6(_), inner) => (
                if inner.is_ipv4() {
                    "IPv4-in-IPv6"
                } else {
                    "IPv6-in-IPv6"
                },
                if inner.is_ipv4() {
                    "next header 4"
                } else {
                    "next header 41"
                },
                "an ip6tnl device (ip6_tunnel module)",
                40,
            ),
        };
        Tunnel {
            name,
            number,
            device,
            overhead,
        }
    }
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
pub fn verdict(o: &[Outcome], rip: IpAddr, vip: IpAddr) -> Verdict {
    let tunnel = Tunnel::of(rip, vip);
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
            tunnel: tunnel.name,
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
    if !foreign.sent && rip.is_ipv4() != vip.is_ipv4() {
        f.push(format!(
            "the VIP and the real server are of different families: DR cannot carry the VIP's \
             packets to it, only TUN can ({})",
            tunnel.name
        ));
    } else if !foreign.sent {
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
        if dsrc.arrived && !dsrc.delivered && vip.is_ipv6() {
            f.push(format!(
                "the VIP {vip} is not configured on the real server: add it as a /128 on lo \
                 (`ip -6 addr add {vip}/128 dev lo`)"
            ));
        } else if dsrc.arrived && !dsrc.delivered {
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
        f.push(format!(
            "the network drops {} ({}) between the director and the real server",
            tunnel.name, tunnel.number
        ));
    } else if !tun.delivered {
        let rp = match vip {
            IpAddr::V4(_) => ", and keep rp_filter 0 or 2",
            IpAddr::V6(_) => "",
        };
        f.push(format!(
            "{} arrives but is not decapsulated and delivered: bring up {} with the VIP on it or \
             run `uvs decap`{rp} (see `uvs audit --mode tun --vip {vip}`)",
            tunnel.name, tunnel.device
        ));
    }
    let recommendation = match (dr_works, tun_works) {
        (true, true) => format!(
            "both DR (-g) and TUN (-i) work here; DR is cheaper (no encapsulation, no {}-byte MTU \
             loss)",
            tunnel.overhead
        ),
        (true, false) => "use DR (-g); TUN does not work to this real server".into(),
        (false, true) => "use TUN (-i); DR will not work to this real server".into(),
        (false, false) => "neither DR nor TUN works to this real server yet".into(),
    };
    Verdict {
        dr_works,
        tun_works,
        tunnel: tunnel.name,
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
        let what = match x.case {
            Case::Tun => format!("TUN ({}, client -> VIP inside)", v.tunnel),
            c => c.describe().to_string(),
        };
        let _ = writeln!(s, "{what:<42} {net:<9} {srv}");
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
    use std::net::Ipv4Addr;

    const RIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11));
    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));

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
        let v = verdict(&o, RIP, VIP);
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
        // Everything arrives; no decapsulator, VIP missing on the server.
        let delivered = [true, false, false, false, false];
        let v = verdict(&five([true; 5], delivered), RIP, VIP);
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
        let v = verdict(&five([true; 5], delivered), RIP, VIP);
        assert!(v.dr_works && v.tun_works);
        assert!(v.recommendation.starts_with("both"));
        // Nothing arrives at all: no conclusion about either.
        let v = verdict(&outcomes(&[(Case::Plain, false, false)]), RIP, VIP);
        assert!(!v.dr_works && !v.tun_works);
        assert!(v.findings[0].contains("nothing else can be judged"));
    }

    #[test]
    fn findings_name_the_ipv6_paths() {
        let (rip, vip): (IpAddr, IpAddr) = (
            "2001:2::11".parse().unwrap(),
            "2001:2::100".parse().unwrap(),
        );
        // The VPC lab over IPv6: DR's foreign source dropped, 6in6 passes.
        let o = five(
            [true, false, true, true, true],
            [true, false, true, true, true],
        );
        let v = verdict(&o, rip, vip);
        assert!(!v.dr_works && v.tun_works);
        assert_eq!(v.tunnel, "IPv6-in-IPv6");
        let r = render(&o, &v);
        assert!(
            r.contains("TUN (IPv6-in-IPv6, client -> VIP inside)   arrived"),
            "{r}"
        );
        // Nothing decapsulates, the VIP is missing.
        let v = verdict(
            &five([true; 5], [true, false, false, false, false]),
            rip,
            vip,
        );
        let has = |w: &str| v.findings.iter().any(|f| f.contains(w));
        assert!(has("ip -6 addr add 2001:2::100/128 dev lo"), "{v:?}");
        assert!(
            has("IPv6-in-IPv6 arrives but") && has("ip6tnl") && !has("rp_filter"),
            "{v:?}"
        );
        // Dropped 4in6 says its next header; DR to the other family is
        // not tried, and says why.
        let v4vip: IpAddr = VIP;
        let mut o = five(
            [true, false, false, false, false],
            [true, false, false, false, false],
        );
        o.iter_mut()
            .filter(|x| x.case.is_dr())
            .for_each(|x| x.sent = false);
        let v = verdict(&o, rip, v4vip);
        assert_eq!(v.tunnel, "IPv4-in-IPv6");
        assert!(
            v.findings.iter().any(|f| f.contains("different families")),
            "{v:?}"
        );
        assert!(
            v.findings
                .iter()
                .any(|f| f.contains("drops IPv4-in-IPv6 (next header 4)")),
            "{v:?}"
        );
    }
}
