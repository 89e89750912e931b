//! The checks themselves, one function per concern, each adding findings
//! with the command that fixes them.

use super::family::{self, Place, Whys};
use super::*;

pub(super) fn vip_checks(h: &HostState, o: &Options, out: &mut Out) {
    let tun_dev = h.links.iter().find(|l| l.tunnel).map(|l| l.name.clone());
    let want_dev = match (o.mode, tun_dev) {
        (Mode::Tun, Some(t)) => t,
        _ => "lo".to_string(),
    };
    let whys = Whys {
        owned: "the real server owns the VIP without announcing it",
        short: |_, _| "on a loopback device the whole prefix becomes local: use /32".into(),
        announced: "a VIP on a network interface is announced by ARP: clients then bypass the director",
    };
    for vip in o.vips4() {
        let places = h.vip_places(vip);
        let on = |kind: fn(&Link) -> bool| {
            let kind_of = |p: &&Place| h.links.iter().any(|l| l.name == p.dev && kind(l));
            places.iter().find(kind_of)
        };
        let home = match o.mode {
            Mode::Tun => on(|l| l.tunnel).or(on(|l| l.loopback)),
            _ => on(|l| l.loopback),
        };
        let announced: Vec<&Place> = places
            .iter()
            .filter(|p| !h.link(p.dev).is_some_and(|l| l.loopback || l.tunnel))
            .collect();
        family::real_server_vip(out, o, vip, (home, &want_dev), &announced, &whys);
    }
}

pub(super) fn arp_checks(h: &HostState, out: &mut Out) {
    let links = h.traffic_links();
    family::none_carry_traffic(out, &links, ("interfaces", "none up with an IPv4 address"));
    for l in links {
        arp_sysctl(
            h,
            out,
            &l.name,
            ("arp_ignore", 1, |v| v >= 1),
            "ARP for the VIP is answered only by the director",
            "the real server answers ARP for the VIP (on lo), stealing it from the director",
        );
        arp_sysctl(
            h,
            out,
            &l.name,
            ("arp_announce", 2, |v| v == 2),
            "ARP requests never carry the VIP as sender",
            "ARP requests sent while replying from the VIP teach neighbours VIP = this server's MAC",
        );
    }
}

/// One ARP sysctl of a link, as the kernel applies it (the larger of `all`
/// and the link's): Ok when `holds`, else Fail with the fix setting it to
/// `want` on `all`.
fn arp_sysctl(
    h: &HostState,
    out: &mut Out,
    link: &str,
    (key, want, holds): (&str, i64, fn(i64) -> bool),
    good: &str,
    bad: &str,
) {
    let (v, shown) = h.effective_max(link, key);
    let check = format!("{key} {link}");
    if holds(v) {
        out.add(Status::Ok, check, shown, good, vec![]);
    } else {
        let fix = sysctl_fix(format!("net.ipv4.conf.all.{key}"), want);
        out.add(Status::Fail, check, shown, bad, vec![fix]);
    }
}

pub(super) fn tun_checks(h: &HostState, o: &Options, out: &mut Out) {
    let tun = h.links.iter().find(|l| l.tunnel);
    match (tun, h.decap_running) {
        (Some(t), _) if t.up => out.add(
            Status::Ok,
            "decapsulator",
            format!("{} is up", t.name),
            "IPIP packets from the director are unwrapped",
            vec![],
        ),
        (Some(t), _) => out.add(
            Status::Fail,
            "decapsulator",
            format!("{} is down", t.name),
            "IPIP packets are answered with ICMP protocol unreachable",
            vec![Fix::Manual {
                command: format!("ip link set {} up", t.name),
            }],
        ),
        (None, true) => out.add(
            Status::Ok,
            "decapsulator",
            "uvs decap is running",
            "IPIP packets are unwrapped in userspace",
            vec![],
        ),
        (None, false) => out.add(
            Status::Fail,
            "decapsulator",
            "none (no tunl0, no uvs decap)",
            "without one every IPIP packet is answered with ICMP protocol unreachable",
            vec![Fix::Manual {
                command: "modprobe ipip && ip link set tunl0 up   (or run: uvs decap)".into(),
            }],
        ),
    }
    // Decapsulated packets arrive on the tunnel device with the client's
    // source; a device created later inherits conf/default.
    let dev = tun.map_or("default", |t| t.name.as_str());
    let vip_on_tun = o.vips4().iter().any(|v| {
        h.vip_places(*v)
            .iter()
            .any(|p| h.links.iter().any(|l| l.name == p.dev && l.tunnel))
    });
    let (rp, rp_s) = h.effective_max(dev, "rp_filter");
    let ok = rp == 0 || (rp == 2 && vip_on_tun);
    if ok {
        out.add(
            Status::Ok,
            format!("rp_filter {dev}"),
            rp_s,
            "decapsulated packets pass the reverse-path check",
            vec![],
        );
    } else {
        let why = if vip_on_tun {
            "strict reverse-path filtering (1) drops decapsulated packets: the route back to the client is not via the tunnel device"
        } else {
            "with the VIP on lo, any reverse-path filtering drops decapsulated packets (their source is reached via another interface)"
        };
        let limit = if vip_on_tun { 2 } else { 0 };
        let mut fixes = lower_fixes(h, dev, "rp_filter", 0, limit);
        if rp == 1 && vip_on_tun {
            fixes = lower_fixes(h, dev, "rp_filter", 0, 0);
        }
        out.add(Status::Fail, format!("rp_filter {dev}"), rp_s, why, fixes);
    }
    mss_check(h, out);
}

/// The MSS this server advertises to clients decides the size of their
/// segments, which reach it through the tunnel 20 bytes bigger. The
/// director cannot shrink it (it never sees the server's SYN-ACK), so
/// without a smaller advmss here uploads depend on the director's
/// "fragmentation needed" reaching clients, and stall behind firewalls
/// that drop ICMP.
pub(super) fn mss_check(h: &HostState, out: &mut Out) {
    for l in h.traffic_links() {
        let want = l.mtu.saturating_sub(20 + 40);
        let routes: Vec<&Route> = h.routes.iter().filter(|r| r.dev == l.name).collect();
        if routes.is_empty() {
            out.add(
                Status::Info,
                format!("tcp mss {}", l.name),
                format!("mtu {}", l.mtu),
                "IPIP adds 20 bytes: full-size client segments rely on PMTU discovery unless routes here carry advmss",
                vec![],
            );
        }
        for r in routes {
            let adv = r
                .advmss
                .unwrap_or(r.mtu.unwrap_or(l.mtu).saturating_sub(40));
            let value = match r.advmss {
                Some(a) => format!("{}: advmss {a}", r.dst),
                None => format!(
                    "{}: advmss {adv} (from mtu {})",
                    r.dst,
                    r.mtu.unwrap_or(l.mtu)
                ),
            };
            if adv <= want {
                out.add(
                    Status::Ok,
                    format!("tcp mss {} {}", l.name, r.dst),
                    value,
                    "clients' full-size segments still fit once tunnelled",
                    vec![],
                );
            } else {
                out.add(
                    Status::Warn,
                    format!("tcp mss {} {}", l.name, r.dst),
                    value,
                    &format!(
                        "clients send segments that are {} bytes too big once tunnelled: uploads work only through PMTU discovery and stall for clients whose firewalls drop ICMP",
                        adv - want
                    ),
                    vec![Fix::Address {
                        command: r.change_command(want),
                    }],
                );
            }
        }
    }
}

pub(super) fn accept_local_check(h: &HostState, out: &mut Out) {
    let a = h.conf("all", "accept_local").unwrap_or(0);
    for l in h.traffic_links() {
        let d = h.conf(&l.name, "accept_local").unwrap_or(0);
        let on = a != 0 || d != 0;
        out.add(
            Status::Info,
            format!("accept_local {}", l.name),
            format!("{} (all={a}, {}={d})", u8::from(on), l.name),
            if on {
                "packets with a local (VIP) source are accepted, as needed when director and real server share a host or for probes"
            } else {
                "packets sourced from the VIP are dropped: fine unless director and real server share a host (then set it to 1)"
            },
            vec![],
        );
    }
}

pub(super) fn nat_checks(h: &HostState, o: &Options, out: &mut Out) {
    match (h.default_gw(), o.director_addr) {
        (Some(g), Some(d)) if g == d => out.add(Status::Ok, "default route", format!("via {g}"), "replies go back through the director, which translates them", vec![]),
        (g, Some(d)) => out.add(
            Status::Fail,
            "default route",
            g.map_or("none".into(), |g| format!("via {g}")),
            "NAT does not rewrite the source: replies that bypass the director reach clients from the real server's own address and are dropped",
            vec![Fix::Address { command: format!("ip route replace default via {d}") }],
        ),
        (g, None) => out.add(
            Status::Info,
            "default route",
            g.map_or("none".into(), |g| format!("via {g}")),
            "for NAT it must point at the director (pass --director ADDR to check it)",
            vec![],
        ),
    }
    // A more specific route through another gateway takes the replies to
    // those clients past the director just as surely.
    let Some(d) = o.director_addr else {
        return;
    };
    for r in &h.routes {
        let Some(g) = r.gateway.filter(|g| *g != d) else {
            continue;
        };
        if r.dst.is_default() {
            continue;
        }
        out.add(
            Status::Warn,
            format!("route {}", r.dst),
            format!("via {g} dev {}", r.dev),
            "replies to clients in this network bypass the director and are not translated back to the VIP",
            vec![Fix::Manual {
                command: format!("ip route del {} via {g}", r.dst),
            }],
        );
    }
}

pub(super) fn timestamp_checks(h: &HostState, o: &Options, out: &mut Out) {
    match h.get("net.ipv4.tcp_tw_recycle") {
        Some(v) if v != 0 => out.add(
            Status::Fail,
            "tcp_tw_recycle",
            v.to_string(),
            "drops SYNs from clients behind one NAT whose timestamps go backwards",
            vec![sysctl_fix("net.ipv4.tcp_tw_recycle".into(), 0)],
        ),
        Some(_) => out.add(
            Status::Ok,
            "tcp_tw_recycle",
            "0",
            "not dropping SYNs by timestamp",
            vec![],
        ),
        None => out.add(
            Status::Ok,
            "tcp_tw_recycle",
            "absent (removed in Linux 4.12)",
            "not dropping SYNs by timestamp",
            vec![],
        ),
    }
    if o.mode == Mode::Nat
        && let Some(ts) = h.get("net.ipv4.tcp_timestamps")
    {
        out.add(
            Status::Info,
            "tcp_timestamps",
            ts.to_string(),
            "health checks from the director and forwarded client traffic share one source address in NAT; with different timestamp clocks, old kernels drop them as old duplicates",
            vec![],
        );
    }
}

pub(super) fn director_checks(h: &HostState, o: &Options, out: &mut Out) {
    let ifs: Vec<String> = match &o.interface {
        Some(i) => vec![i.clone()],
        None => h.traffic_links().iter().map(|l| l.name.clone()).collect(),
    };
    for i in &ifs {
        if !h.links.iter().any(|l| &l.name == i) {
            out.add(
                Status::Fail,
                format!("interface {i}"),
                "absent",
                "uvs captures on this interface",
                vec![],
            );
            continue;
        }
        let f = h.conf(i, "forwarding").unwrap_or(0);
        if f == 0 {
            out.add(
                Status::Ok,
                format!("forwarding {i}"),
                "0",
                "the kernel does not forward VIP traffic alongside uvs",
                vec![],
            );
        } else if o.mode == Mode::Nat {
            out.add(
                Status::Fail,
                format!("forwarding {i}"),
                f.to_string(),
                "uvs translates NAT traffic itself (unlike IPVS, it needs no ip_forward); with forwarding on the kernel would also pass real servers' replies on untranslated",
                vec![sysctl_fix(format!("net.ipv4.conf.{i}.forwarding"), 0)],
            );
        } else {
            out.add(
                Status::Fail,
                format!("forwarding {i}"),
                f.to_string(),
                "with forwarding on the kernel routes or redirects the VIP frames uvs forwards",
                vec![sysctl_fix(format!("net.ipv4.conf.{i}.forwarding"), 0)],
            );
        }
        let (rp, s) = h.effective_max(i, "rp_filter");
        out.add(Status::Info, format!("rp_filter {i}"), s, if rp == 1 { "strict: fine for uvs (it captures before routing) but the director's own health checks need symmetric routes" } else { "no effect on uvs, which captures before routing" }, vec![]);
        let off = h.offloads.get(i).map_or_else(
            || "unknown (ethtool not available)".to_string(),
            |o| summarize_offloads(o),
        );
        out.add(
            Status::Info,
            format!("offloads {i}"),
            off,
            "any setting works: uvs completes partial checksums and segments GSO super-frames itself",
            vec![],
        );
    }
    let why = (
        "uvs answers ARP for it; the kernel stays quiet",
        "a local VIP makes the kernel answer its traffic with resets and ICMP before uvs forwards it",
    );
    for vip in o.vips4() {
        family::director_vip(out, vip, &h.vip_places(vip), why);
    }
}
