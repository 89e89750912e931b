//! The checks for IPv6 VIPs. What replaces arp_ignore and arp_announce:
//! nothing to set. Neighbour discovery answers a solicitation only for an
//! address on the interface it arrived on, and solicits from the packet's
//! source only when that source is on the outgoing interface, so a VIP on
//! lo is neither answered for nor announced (docs/audit.md, "IPv6 on a
//! real server", has the experiments). What can still go wrong: the VIP
//! elsewhere or with a short prefix, IPv6 off on an interface, forwarding
//! on (a router ignores Router Advertisements), a proxy entry for the VIP,
//! addresses stuck in DAD, and an IPv6 VIP lost when lo goes down.

use super::family::{self, Place, Whys};
use super::*;

impl HostState {
    fn conf6(&self, dev: &str, k: &str) -> Option<i64> {
        self.get(&format!("net.ipv6.conf.{dev}.{k}"))
    }

    fn vip6_places(&self, vip: Ipv6Addr) -> Vec<Place<'_>> {
        let mine = self.addrs6.iter().filter(|a| a.addr == vip);
        mine.map(Addr6::place).collect()
    }

    /// Interfaces that carry traffic for IPv6: up, not loopback, not a
    /// tunnel, with an address of either family (an interface with IPv6
    /// turned off has no IPv6 address left to find it by).
    fn traffic_links6(&self) -> Vec<&Link> {
        let has_addr =
            |n: &str| self.addrs.iter().any(|a| a.0 == n) || self.addrs6.iter().any(|a| a.dev == n);
        self.links
            .iter()
            .filter(|l| l.up && !self.quiet(&l.name) && has_addr(&l.name))
            .collect()
    }

    /// Where decapsulated IPv6 packets arrive: a kernel IPv6 tunnel, else
    /// the tunnel device of IPv4 (uvs decap's), else `default` (what a
    /// device created later starts with).
    fn tunnel6_dev(&self) -> String {
        let up = |n: &&String| self.link(n).is_some_and(|l| l.up);
        let t6 = self.tunnels6.iter().find(up).or(self.tunnels6.first());
        let t4 = self.links.iter().find(|l| l.tunnel).map(|l| &l.name);
        t6.or(t4)
            .map_or_else(|| "default".to_string(), Clone::clone)
    }

    /// A device that never announces its addresses: loopback or a tunnel.
    fn quiet(&self, dev: &str) -> bool {
        let tunnel6 = self.tunnels6.iter().any(|t| t == dev);
        self.link(dev)
            .is_some_and(|l| l.loopback || l.tunnel || tunnel6)
    }
}

/// Where a VIP belongs: lo, or for TUN also a tunnel device.
fn is_home(h: &HostState, o: &Options, dev: &str) -> bool {
    let lo = h.link(dev).is_some_and(|l| l.loopback);
    lo || (o.mode == Mode::Tun && h.quiet(dev))
}

/// Every check of an IPv6 VIP on a DR or TUN real server.
pub(super) fn real_server(h: &HostState, o: &Options, out: &mut Out) {
    if h.conf6("all", "disable_ipv6").is_none() {
        out.add(
            Status::Fail,
            "ipv6",
            "no net.ipv6 settings",
            "this kernel has no IPv6 (built without it, or booted with ipv6.disable=1): it cannot own an IPv6 VIP",
            vec![],
        );
        return;
    }
    let mut homes = vec!["lo".to_string()];
    for vip in o.vips6() {
        vip_checks(h, o, vip, out);
        for p in h.vip6_places(vip) {
            if is_home(h, o, p.dev) && !homes.iter().any(|d| d == p.dev) {
                homes.push(p.dev.to_string());
            }
        }
    }
    for dev in &homes {
        disable_check(h, dev, out);
        keep_addr_check(h, dev, out);
    }
    if o.mode == Mode::Tun {
        tun_checks(h, &homes, out);
    }
    let links = h.traffic_links6();
    family::none_carry_traffic(out, &links, ("ipv6 interfaces", "none up with an address"));
    for l in links {
        disable_check(h, &l.name, out);
        forwarding_check(h, &l.name, out);
        proxy_check(h, o, &l.name, out);
        dad_check(h, o, &l.name, out);
    }
}

/// The VIP on lo (or, for TUN, on the tunnel device) as a /128, and on no
/// network interface.
fn vip_checks(h: &HostState, o: &Options, vip: Ipv6Addr, out: &mut Out) {
    let places = h.vip6_places(vip);
    let home = places.iter().find(|p| is_home(h, o, p.dev));
    let want_dev = match o.mode {
        Mode::Tun if h.tunnel6_dev() != "default" => h.tunnel6_dev(),
        _ => "lo".to_string(),
    };
    let announced: Vec<&Place> = places.iter().filter(|p| !h.quiet(p.dev)).collect();
    let whys = Whys {
        owned: "the real server owns the VIP; neighbour discovery neither answers for it nor announces it",
        short: |vip, p| {
            format!(
                "a shorter prefix routes the rest of {vip}/{} into {}: this server can no longer reach the other hosts in it (its gateway, clients in the VIP's network): use /128",
                p.prefix, p.dev
            )
        },
        announced: "on a network interface the VIP is answered in neighbour discovery and is the source of this server's solicitations, so routers learn it at this server's MAC and clients bypass the director (and real servers' DAD fails on each other)",
    };
    family::real_server_vip(out, o, vip, (home, &want_dev), &announced, &whys);
}

/// IPv6 on a device: the device's own value (writing `all` sets every
/// device, but each device keeps its own afterwards).
fn disable_check(h: &HostState, dev: &str, out: &mut Out) {
    let v = h.conf6(dev, "disable_ipv6").unwrap_or(0);
    let check = format!("disable_ipv6 {dev}");
    if v == 0 {
        let why = match dev {
            "default" => "a tunnel device created later starts with IPv6 on",
            _ => "IPv6 is on",
        };
        out.add(Status::Ok, check, "0", why, vec![]);
        return;
    }
    let why = if dev == "lo" {
        "IPv6 is off on lo: the kernel removed its IPv6 addresses and refuses new ones, so the VIP cannot be there".to_string()
    } else if dev == "default" {
        "a tunnel device created later (uvs decap's) starts with IPv6 off and drops every decapsulated IPv6 packet".to_string()
    } else if h.link(dev).is_some_and(|l| l.tunnel) || h.tunnels6.iter().any(|t| t == dev) {
        format!("IPv6 is off on {dev}: every decapsulated IPv6 packet is dropped there")
    } else {
        format!(
            "IPv6 is off on {dev}: every IPv6 packet arriving there is dropped, the VIP's too; its IPv6 addresses are gone (add them again once it is on)"
        )
    };
    let fix = sysctl_fix(format!("net.ipv6.conf.{dev}.disable_ipv6"), 0);
    out.add(Status::Fail, check, v.to_string(), &why, vec![fix]);
}

/// keep_addr_on_down: `all` when it is not 0, else the device's; above 0
/// keeps the addresses when the device goes down.
fn keep_addr_check(h: &HostState, dev: &str, out: &mut Out) {
    let a = h.conf6("all", "keep_addr_on_down").unwrap_or(0);
    let d = h.conf6(dev, "keep_addr_on_down").unwrap_or(0);
    let eff = if a != 0 { a } else { d };
    let value = format!("{eff} (all={a}, {dev}={d})");
    let check = format!("keep_addr_on_down {dev}");
    if eff > 0 {
        let why = "the VIP stays when the device goes down and up";
        out.add(Status::Ok, check, value, why, vec![]);
        return;
    }
    let mut fixes = Vec::new();
    if a < 0 {
        fixes.push(sysctl_fix("net.ipv6.conf.all.keep_addr_on_down".into(), 0));
    }
    fixes.push(sysctl_fix(
        format!("net.ipv6.conf.{dev}.keep_addr_on_down"),
        1,
    ));
    out.add(
        Status::Warn,
        check,
        value,
        &format!("when {dev} goes down (ifdown, a network restart) the kernel deletes its IPv6 addresses, the VIP with them; the IPv4 VIP stays"),
        fixes,
    );
}

/// A real server with forwarding on is a router: it ignores Router
/// Advertisements unless accept_ra=2, and dropped the default routes they
/// had given it when forwarding went on.
fn forwarding_check(h: &HostState, dev: &str, out: &mut Out) {
    let a = h.conf6("all", "forwarding").unwrap_or(0);
    let f = h.conf6(dev, "forwarding").unwrap_or(0);
    let ra = h.conf6(dev, "accept_ra").unwrap_or(1);
    let value = format!("{f} (all={a}), accept_ra={ra}");
    let check = format!("ipv6 forwarding {dev}");
    match (f, ra) {
        (0, _) => out.add(
            Status::Ok,
            check,
            value,
            "a host: it takes Router Advertisements and its neighbour advertisements carry no router flag",
            vec![],
        ),
        (_, 1) => {
            let key = if a != 0 { "all" } else { dev };
            out.add(
                Status::Fail,
                check,
                value,
                "with forwarding on this server is a router: it ignores Router Advertisements and dropped the default route they gave it, so replies from the VIP may have no way back",
                vec![sysctl_fix(format!("net.ipv6.conf.{key}.forwarding"), 0)],
            )
        }
        _ => out.add(
            Status::Info,
            check,
            value,
            if ra >= 2 {
                "a router (router flag in its neighbour advertisements) that still takes Router Advertisements (accept_ra=2)"
            } else {
                "a router (router flag in its neighbour advertisements); Router Advertisements are not used here (accept_ra=0)"
            },
            vec![],
        ),
    }
}

/// Proxy NDP: the one way this kernel answers solicitations for an
/// address that is not on the interface (proxy_ndp on `all` or the
/// device, forwarding on the device, and a proxy entry for it).
fn proxy_check(h: &HostState, o: &Options, dev: &str, out: &mut Out) {
    let p = h.conf6("all", "proxy_ndp").unwrap_or(0) != 0
        || h.conf6(dev, "proxy_ndp").unwrap_or(0) != 0;
    let f = h.conf6(dev, "forwarding").unwrap_or(0) != 0;
    let on = format!("proxy_ndp {}, forwarding {}", u8::from(p), u8::from(f));
    let check = format!("proxy_ndp {dev}");
    let Some(proxies) = &h.proxies6 else {
        let (status, why) = if p && f {
            (
                Status::Warn,
                "a proxy entry for the VIP (ip -6 neigh show proxy) would make this server answer for it",
            )
        } else {
            (
                Status::Ok,
                "solicitations for the VIP go unanswered: proxy NDP needs proxy_ndp and forwarding on",
            )
        };
        out.add(
            status,
            check,
            format!("{on}; proxy entries unknown"),
            why,
            vec![],
        );
        return;
    };
    let vips = o.vips6();
    let mine: Vec<Ipv6Addr> = proxies
        .iter()
        .filter(|(d, a)| d == dev && vips.contains(a))
        .map(|(_, a)| *a)
        .collect();
    if mine.is_empty() {
        out.add(
            Status::Ok,
            check,
            format!("{on}; no proxy entry for a VIP"),
            "solicitations for the VIP go unanswered: NDP answers only for addresses on the interface they arrive on (what arp_ignore=1 does for ARP)",
            vec![],
        );
        return;
    }
    let list: Vec<String> = mine.iter().map(ToString::to_string).collect();
    let fixes = mine
        .iter()
        .map(|a| Fix::Address {
            command: format!("ip -6 neigh del proxy {a} dev {dev}"),
        })
        .collect();
    let value = format!("{on}; proxy entry for {}", list.join(", "));
    if p && f {
        out.add(Status::Fail, check, value, "this server answers neighbour solicitations for the VIP (proxy NDP): routers and clients on the link send VIP traffic straight here, bypassing the director", fixes);
    } else {
        out.add(Status::Warn, check, value, "inactive while proxy_ndp or forwarding is off, but turning them on makes this server answer for the VIP", fixes);
    }
}

/// DAD on an interface's own addresses (the VIP's have their own
/// finding): a tentative address is not used or answered yet, a failed
/// one never.
fn dad_check(h: &HostState, o: &Options, dev: &str, out: &mut Out) {
    let vips = o.vips6();
    let addrs: Vec<&Addr6> = h
        .addrs6
        .iter()
        .filter(|a| a.dev == dev && !vips.contains(&a.addr))
        .collect();
    let dad = |k| {
        let a = h.conf6("all", k).unwrap_or(0);
        a.max(h.conf6(dev, k).unwrap_or(0))
    };
    let (accept, n) = (
        dad("accept_dad"),
        h.conf6(dev, "dad_transmits").unwrap_or(1),
    );
    let check = format!("ipv6 addresses {dev}");
    let failed: Vec<&&Addr6> = addrs.iter().filter(|a| a.dadfailed).collect();
    let tentative: Vec<&&Addr6> = addrs
        .iter()
        .filter(|a| a.tentative && !a.dadfailed)
        .collect();
    let shown = |v: &[&&Addr6]| v.iter().map(|a| a.shown()).collect::<Vec<_>>().join(", ");
    if !failed.is_empty() {
        let fixes = failed
            .iter()
            .flat_map(|a| ["del", "add"].map(|verb| family::addr_fix(verb, a.addr, a.prefix, dev)))
            .collect();
        out.add(
            Status::Fail,
            check,
            shown(&failed),
            "duplicate address detection found another host with this address: the kernel never uses it, so the director and clients cannot reach this server at it (remove the duplicate, then add it again)",
            fixes,
        );
    } else if !tentative.is_empty() {
        out.add(
            Status::Warn,
            check,
            shown(&tentative),
            &format!("duplicate address detection is still running (dad_transmits={n}): the address is neither used nor answered until it ends; addresses added with nodad skip it"),
            vec![],
        );
    } else {
        out.add(
            Status::Ok,
            check,
            format!(
                "{} usable (accept_dad={accept}, dad_transmits={n})",
                addrs.len()
            ),
            "no address is tentative or failed duplicate address detection",
            vec![],
        );
    }
}

/// TUN: something must unwrap the director's packets for an IPv6 VIP: a
/// kernel IPv6 tunnel, or `uvs decap` (every IPVS encapsulation).
fn tun_checks(h: &HostState, homes: &[String], out: &mut Out) {
    let up: Vec<&Link> = h
        .tunnels6
        .iter()
        .filter_map(|t| h.link(t))
        .filter(|l| l.up)
        .collect();
    let check = "decapsulator ipv6";
    if let Some(l) = up.first() {
        out.add(
            Status::Ok,
            check,
            format!("{} is up", l.name),
            "the kernel's IPv6 tunnel unwraps the director's packets",
            vec![],
        );
    } else if let Some(t) = h.tunnels6.first() {
        out.add(
            Status::Fail,
            check,
            format!("{t} is down"),
            "tunnelled packets for the IPv6 VIP are answered with ICMP errors and lost",
            vec![Fix::Manual {
                command: format!("ip link set {t} up"),
            }],
        );
    } else if h.decap_running {
        out.add(
            Status::Ok,
            check,
            "uvs decap is running",
            "IPv6-in-IPv6, IPv4-in-IPv6 and IPv6-in-IPv4 packets are unwrapped in userspace",
            vec![],
        );
    } else {
        out.add(
            Status::Fail,
            check,
            "none (no ip6tnl or sit device, no uvs decap)",
            "tunnelled packets for the IPv6 VIP are answered with ICMPv6 parameter problem (IPv6 outer header) or protocol 41 unreachable (IPv4 outer) and lost",
            vec![Fix::Manual {
                command: "modprobe ip6_tunnel && ip link set ip6tnl0 up   (or run: uvs decap)"
                    .into(),
            }],
        );
    }
    let dev = h.tunnel6_dev();
    if !homes.contains(&dev) {
        disable_check(h, &dev, out);
    }
}

/// The director: an IPv6 VIP configured locally is answered by the
/// kernel (IPv6 accepts a local address on any interface) before uvs
/// could forward it.
pub(super) fn director_checks(h: &HostState, o: &Options, out: &mut Out) {
    let why = (
        "the kernel stays quiet about it",
        "a local VIP makes the kernel answer its traffic itself, on any interface, before uvs forwards it",
    );
    for vip in o.vips6() {
        family::director_vip(out, vip, &h.vip6_places(vip), why);
    }
}
