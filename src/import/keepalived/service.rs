//! A virtual server and its real servers as the config's `[[service]]`
//! tables: one per address and port (each member of a group), sharing
//! the block's options; keepalived's defaults where the block says
//! nothing (UDP, NAT, wlc, a 60-second delay_loop), each with a warning
//! where keepalived too reports it.

use super::check::{Inherited, check, inherited};
use super::converted::{Body, Converted, Member, RealServer, Service, written};
use super::keywords::SCHED_FLAGS;
use super::read::Node;
use super::report::{Place, Report, shown};
use super::statement::{block, extra, ip_addr, no_block, option, port, seconds, value, whole};
use crate::config::{RealServerSection, ServiceSection};
use crate::lvs::service::{
    MAX_TIMEOUT, Persistence, Protocol, SchedFlags, SchedulerKind, ServiceKey,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A `virtual_server` block: its services, or none (with the reason
/// reported).
pub(super) fn virtual_server(
    n: &Node,
    groups: &HashMap<&str, Vec<Member>>,
    out: &mut Converted,
    r: &mut Report,
) {
    if !block(n, r) {
        return;
    }
    let persistent = n.child("persistence_timeout").is_some();
    let mut vips: Vec<(Place, IpAddr, u16)> = Vec::new();
    let mut fwmark = None;
    match (n.arg(1), n.arg(2)) {
        (Some("fwmark"), Some(mark)) => {
            extra(n, 3, r);
            out.fwmarks.push((n.at.clone(), mark.to_string()));
            let Some(m) = mark.parse::<u32>().ok().filter(|m| *m > 0) else {
                r.error(
                    &n.at,
                    format!("fwmark {}: a mark is 1 to 4294967295", shown(mark)),
                );
                return;
            };
            r.warn(
                &n.at,
                format!(
                    "firewall-mark virtual server {m}: iptables sets the mark, and uvs sees \
                     frames before iptables: its service is written commented out; define the \
                     mark as a [[mark]] with id = {m} and uncomment it (the TODO at the end of \
                     the output; docs/config.md, Firewall marks)"
                ),
            );
            fwmark = Some(m);
        }
        (Some("group"), Some(g)) => {
            extra(n, 3, r);
            let Some(members) = groups.get(g) else {
                r.error(
                    &n.at,
                    format!("virtual_server_group {} is not defined", shown(g)),
                );
                return;
            };
            for m in members {
                match (m.words.first().map(String::as_str), m.words.get(1)) {
                    (Some("fwmark"), _) => r.warn(
                        m.at,
                        "firewall-mark group members are not carried over: write the mark's service as a `virtual_server fwmark` (or a uvs `fwmark` service) instead",
                    ),
                    (Some(a), Some(p)) if !a.contains('-') => {
                        if m.words.len() > 2 {
                            r.warn(m.at, "a group member is an address and a port; the rest is ignored, as keepalived ignores it");
                        }
                        if let Some((addr, port)) = vip(a, p, m.at, persistent, r) {
                            vips.push((m.at.clone(), addr, port));
                        }
                    }
                    (Some(a), Some(_)) => r.warn(
                        m.at,
                        format!(
                            "group member {} not carried over (address ranges are not supported)",
                            shown(a)
                        ),
                    ),
                    _ => r.error(m.at, "a group member needs an address and a port"),
                }
            }
        }
        (Some(a), Some(p)) => {
            extra(n, 3, r);
            if let Some((addr, port)) = vip(a, p, &n.at, persistent, r) {
                vips.push((n.at.clone(), addr, port));
            }
        }
        _ => {
            r.error(
                &n.at,
                "virtual_server needs an address and a port (or `group NAME`, `fwmark N`)",
            );
            return;
        }
    }
    if vips.is_empty() && fwmark.is_none() {
        return;
    }
    let protocol = match n.child("protocol") {
        // A mark has no protocol of its own: its definition says.
        _ if fwmark.is_some() => "tcp",
        // keepalived sets UDP, as the kernel would, and reports it.
        None => {
            r.warn(
                &n.at,
                "virtual_server without protocol: keepalived defaults to UDP (and says so), and so \
                 does the import; write `protocol TCP` or `protocol UDP`",
            );
            "udp"
        }
        Some(c) => match value(c, r).map(str::to_ascii_uppercase).as_deref() {
            Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some(p) => {
                r.warn(
                    &c.at,
                    format!(
                        "protocol {} is not in uvs (TCP, UDP); not carried over",
                        shown(p)
                    ),
                );
                return;
            }
            None => return,
        },
    };
    let kind_node = n.child("lb_kind").or_else(|| n.child("lvs_method"));
    if kind_node.is_none() {
        r.warn(
            &n.at,
            "virtual_server without lb_kind: keepalived uses NAT (and says so), and so does the \
             import; write `lb_kind NAT`, `DR` or `TUN`",
        );
    }
    let Some(fwd) = forward(kind_node.and_then(|c| value(c, r))) else {
        r.warn(
            &kind_node.unwrap_or(n).at,
            "lb_kind must be DR, NAT or TUN; not carried over",
        );
        return;
    };
    let sched = scheduler(n, r);
    // keepalived's delay_loop default.
    let interval = n
        .child("delay_loop")
        .and_then(|c| seconds(c, r))
        .unwrap_or(toml::Value::Integer(60));
    let checks = Inherited {
        interval,
        retry: None,
        delay_before_retry: None,
        vips: vips.iter().map(|v| v.1).collect(),
    }
    .under(n, r);
    // keepalived removes a failed server unless inhibit_on_failure says
    // to keep it at weight 0 (uvs's quiesce).
    let inhibit = n.child("inhibit_on_failure").is_some();
    let mut section = ServiceSection {
        protocol: Some(written(protocol.to_string())),
        // Each service's own (written by output::render); the members of
        // a group share the rest.
        address: Some(written(String::new())),
        fwmark: None,
        ipv6: None,
        scheduler: Some(written(sched.to_string())),
        sched_flags: Some(sched_flags(n, sched, r))
            .filter(|f| !f.is_empty())
            .map(written),
        ops: None,
        slow_start: None,
        persistence_timeout: persistence_timeout(n, r).map(written),
        persistence_mask: n
            .child("persistence_granularity")
            .and_then(|c| value(c, r))
            // A netmask for an IPv4 service, a prefix length for an IPv6
            // one (as keepalived reads it by the service's family); the
            // director's own check then pairs it with the family.
            .and_then(|m| match (m.parse::<Ipv4Addr>(), m.parse::<u8>()) {
                (Ok(m), _) => Some(written(m.to_string())),
                (_, Ok(p)) if (1..=128).contains(&p) => Some(written(p.to_string())),
                _ => {
                    r.error(
                        &n.at,
                        format!(
                            "persistence_granularity {} is neither a netmask nor a prefix \
                             length (1 to 128)",
                            shown(m)
                        ),
                    );
                    None
                }
            }),
        on_failure: Some(written(
            if inhibit { "quiesce" } else { "remove" }.to_string(),
        )),
        check: None,
        sorry_server: None,
        quorum: n
            .child("quorum")
            .and_then(|c| whole(c, 1, u32::MAX.into(), r))
            .map(|q| written(q as u32)),
        quorum_up: None,
        quorum_down: None,
        real_servers: Vec::new(),
    };
    for (k, cmd) in [
        ("quorum_up", &mut section.quorum_up),
        ("quorum_down", &mut section.quorum_down),
    ] {
        if let Some(c) = n.child(k)
            && no_block(c, r)
        {
            if c.words.len() < 2 {
                r.error(&c.at, format!("`{k}` needs a command"));
                continue;
            }
            *cmd = Some(c.words[1..].join(" "));
        }
    }
    for c in &n.children {
        match c.key() {
            "real_server" | "sorry_server" => {}
            "delay_loop" | "lb_algo" | "lvs_sched" | "lb_kind" | "lvs_method" | "protocol"
            | "quorum" | "quorum_up" | "quorum_down" => {}
            k if SCHED_FLAGS.contains(&k) || inherited(k) => {}
            "inhibit_on_failure" => {
                no_block(c, r);
            }
            "ops" => {
                no_block(c, r);
                section.ops = Some(written(true));
            }
            "persistence_timeout" | "persistence_granularity" => {}
            "persistence_engine" => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    "persistence_engine is not carried over: uvs has no persistence engines",
                )
            }
            _ => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!("virtual_server option {} is not carried over", option(c)),
                )
            }
        }
    }
    let mut body = Body {
        section,
        nat: fwd == "nat",
        real_servers: Vec::new(),
        sorry: None,
    };
    if let Some(s) = n.child("sorry_server")
        && no_block(s, r)
    {
        extra(s, 3, r);
        if let Some(rs) = server(s, r) {
            body.section.sorry_server = Some(server_section(&rs, fwd));
            body.sorry = Some(rs);
        }
    }
    for c in n.children.iter().filter(|c| c.key() == "real_server") {
        if !block(c, r) {
            continue;
        }
        extra(c, 3, r);
        let Some(rs) = server(c, r) else { continue };
        let section = real_server(c, &rs, fwd, inhibit, &checks, r);
        body.section.real_servers.push(section);
        body.real_servers.push(rs);
    }
    let index = out.bodies.len();
    out.bodies.push(body);
    if let Some(m) = fwmark {
        out.services.push(Service {
            at: n.at.clone(),
            key: ServiceKey::mark(m),
            body: index,
        });
    }
    for (at, addr, port) in vips {
        out.services.push(Service {
            at,
            key: ServiceKey {
                protocol: match protocol {
                    "udp" => Protocol::Udp,
                    _ => Protocol::Tcp,
                },
                addr,
                port,
                fwmark: 0,
            },
            body: index,
        });
    }
}

/// A real or sorry server's address and port, checked.
fn server(n: &Node, r: &mut Report) -> Option<RealServer> {
    let Some(a) = n.arg(1) else {
        r.error(&n.at, format!("{} needs an address", option(n)));
        return None;
    };
    let addr = ip_addr(a, &n.at, r);
    let port = match n.arg(2) {
        Some(p) => Some(port(p, &n.at, r)?),
        None => None,
    };
    let addr = addr?;
    if let Some(why) = never_a_host(addr) {
        r.error(
            &n.at,
            format!("{addr} cannot be a real server: it is {why}"),
        );
        return None;
    }
    Some(RealServer {
        at: n.at.clone(),
        addr,
        port,
    })
}

/// A real server's table: its address, forward method, weight and
/// check; what else its block has gets a warning.
fn real_server(
    n: &Node,
    rs: &RealServer,
    fwd: &str,
    inhibit: bool,
    from: &Inherited,
    r: &mut Report,
) -> RealServerSection {
    let from = from.under(n, r);
    let mut section = server_section(rs, fwd);
    section.weight = n
        .child("weight")
        .and_then(|c| whole(c, 0, i32::MAX as u64, r))
        .map(|w| written(w as i64));
    let mut checks = 0;
    for c in &n.children {
        match c.key() {
            "weight" => {}
            k if inherited(k) => {}
            "inhibit_on_failure" => {
                if no_block(c, r) && !inhibit {
                    r.warn(
                        &c.at,
                        "inhibit_on_failure on one real server: uvs sets it per service; not carried over",
                    );
                }
            }
            "TCP_CHECK" | "HTTP_GET" | "UDP_CHECK" | "DNS_CHECK" | "MISC_CHECK" | "SSL_GET" => {
                if !block(c, r) {
                    continue;
                }
                checks += 1;
                if checks > 1 {
                    r.warn(
                        &c.at,
                        "a second check on one real server: uvs runs one; not carried over",
                    );
                    continue;
                }
                section.check = check(c, &from, r);
            }
            _ => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!("real_server option {} is not carried over", option(c)),
                )
            }
        }
    }
    section
}

/// A real or sorry server's table with its address and forward method:
/// `ADDR:PORT` for NAT, else `ADDR` (DR and TUN use the service's port).
fn server_section(rs: &RealServer, fwd: &str) -> RealServerSection {
    let address = match (rs.port, fwd) {
        (Some(p), "nat") => SocketAddr::new(rs.addr, p).to_string(),
        _ => rs.addr.to_string(),
    };
    RealServerSection {
        address: written(address),
        forward: Some(written(fwd.to_string())),
        weight: None,
        check: None,
        slow_start: None,
    }
}

/// A virtual server's address and port, checked as the director checks
/// them. `persistent`: a port-0 service is then persistent (every port of
/// the VIP); without, the director refuses it.
fn vip(a: &str, p: &str, at: &Place, persistent: bool, r: &mut Report) -> Option<(IpAddr, u16)> {
    let addr = ip_addr(a, at, r);
    let port = match p.parse::<u16>() {
        Ok(0) if persistent => Some(0),
        Ok(0) => {
            r.error(
                at,
                "port 0 (every port) is only for a persistent service: the director (and IPVS) \
                 refuses it without persistence",
            );
            None
        }
        _ => port(p, at, r),
    };
    let addr = addr?;
    if let Err(e) = crate::control::model::check_vip(addr) {
        r.error(at, e);
        return None;
    }
    Some((addr, port?))
}

/// `persistence_timeout [SECONDS]`: keepalived's default without a value
/// is 6 minutes, ipvsadm's 360 s.
fn persistence_timeout(n: &Node, r: &mut Report) -> Option<i64> {
    let c = n.child("persistence_timeout")?;
    if c.arg(1).is_none() && no_block(c, r) {
        return Some(i64::from(Persistence::DEFAULT_TIMEOUT));
    }
    whole(c, 1, MAX_TIMEOUT.into(), r).map(|t| t as i64)
}

fn scheduler(n: &Node, r: &mut Report) -> &'static str {
    let Some(c) = n.child("lb_algo").or_else(|| n.child("lvs_sched")) else {
        return "wlc";
    };
    match value(c, r) {
        None => "wlc",
        Some(name) => match SchedulerKind::from_name(name) {
            Some(k) => k.name(),
            None => {
                let known = SchedulerKind::known();
                let why = SchedulerKind::refusal(name).map_or(String::new(), |w| format!(": {w}"));
                r.warn(
                    &c.at,
                    format!(
                        "lb_algo {} is not in uvs ({known}){why}; wlc is used",
                        shown(name)
                    ),
                );
                "wlc"
            }
        },
    }
}

/// The scheduler-flag keywords (keepalived's lbflags): flag-1..3 for any
/// scheduler, sh-* with sh and mh-* with mh (keepalived ignores the
/// others, with a warning, and so does the import).
fn sched_flags(n: &Node, sched: &str, r: &mut Report) -> Vec<String> {
    let mut flags = Vec::new();
    for c in &n.children {
        let k = c.key();
        if !SCHED_FLAGS.contains(&k) {
            continue;
        }
        no_block(c, r);
        match SchedFlags::parse(k, sched) {
            Ok(_) if !flags.iter().any(|f| f == k) => flags.push(k.to_string()),
            Ok(_) => {}
            Err(_) => r.warn(
                &c.at,
                format!(
                    "{k} only applies to the {} scheduler; not carried over",
                    &k[..2]
                ),
            ),
        }
    }
    flags
}

fn forward(kind: Option<&str>) -> Option<&'static str> {
    match kind.map(str::to_ascii_uppercase).as_deref() {
        Some("DR") => Some("dr"),
        // keepalived's default.
        None | Some("NAT") => Some("nat"),
        Some("TUN") => Some("tun"),
        _ => None,
    }
}

/// The reason an address can never be a real server's, if it is one.
fn never_a_host(a: IpAddr) -> Option<&'static str> {
    let a = match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) if a.is_unspecified() => return Some("the unspecified address"),
        IpAddr::V6(a) if a.is_multicast() => return Some("a multicast address"),
        IpAddr::V6(a) if a.is_loopback() => return Some("a loopback address"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            return Some("an IPv4-mapped address (write the IPv4 address)");
        }
        IpAddr::V6(_) => return None,
    };
    if a.is_unspecified() || a.octets()[0] == 0 {
        Some("an unspecified (\"this network\") address")
    } else if a.is_broadcast() {
        Some("the limited broadcast address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_loopback() {
        Some("a loopback address")
    } else if u32::from(a) >= 0xf000_0000 {
        Some("a reserved (class E) address")
    } else {
        None
    }
}
