//! What the IPv4 and IPv6 sides of the audit share: the address family
//! as a trait over `Ipv4Addr` and `Ipv6Addr`, and the findings about
//! where a VIP is configured, written once for both. Each family's checks
//! decide what differs (which place is the VIP's home, which devices
//! announce it) and say why in its own terms.

use super::*;
use std::fmt::Display;
use std::str::FromStr;

/// An address family: `Ipv4Addr` or `Ipv6Addr`.
pub(super) trait Family: Copy + Display + FromStr + Into<IpAddr> {
    /// Its name in `ip -j addr` output: inet, inet6.
    const NAME: &'static str;
    /// Its longest prefix, the one a VIP has: 32, 128.
    const BITS: u8;
    /// The `ip` command for it: `ip`, `ip -6`.
    const IP: &'static str;
}

impl Family for Ipv4Addr {
    const NAME: &'static str = "inet";
    const BITS: u8 = 32;
    const IP: &'static str = "ip";
}

impl Family for Ipv6Addr {
    const NAME: &'static str = "inet6";
    const BITS: u8 = 128;
    const IP: &'static str = "ip -6";
}

/// One place a VIP is configured.
pub(super) struct Place<'a> {
    pub dev: &'a str,
    pub prefix: u8,
    /// `addr/prefix` as the findings show it (IPv6 with its DAD state).
    pub shown: String,
}

/// `ip addr add` or `del` (`verb`) of `addr/prefix` on `dev`.
pub(super) fn addr_fix<F: Family>(verb: &str, addr: F, prefix: u8, dev: &str) -> Fix {
    Fix::Address {
        command: format!("{} addr {verb} {addr}/{prefix} dev {dev}", F::IP),
    }
}

/// A warning when no interface carries the family's traffic (`links` is
/// empty): nothing could be checked on them. `check` and `value` say
/// which family.
pub(super) fn none_carry_traffic(out: &mut Out, links: &[&Link], (check, value): (&str, &str)) {
    if links.is_empty() {
        let why = "no interface carries traffic, so nothing could be checked";
        out.add(Status::Warn, check, value, why, vec![]);
    }
}

/// Why, in one family's terms, for a real server's VIP findings.
pub(super) struct Whys<F> {
    /// The VIP is home with the full prefix.
    pub owned: &'static str,
    /// The VIP is home with a shorter prefix (at this place).
    pub short: fn(F, &Place) -> String,
    /// The VIP is on a network interface.
    pub announced: &'static str,
}

/// A real server's VIP: owned at `home` (lo or, for TUN, a tunnel
/// device, by the family's rule) with the full prefix, else added on
/// `want_dev`; and on none of the network interfaces in `announced`.
pub(super) fn real_server_vip<F: Family>(
    out: &mut Out,
    o: &Options,
    vip: F,
    (home, want_dev): (Option<&Place>, &str),
    announced: &[&Place],
    whys: &Whys<F>,
) {
    match home {
        None => out.add(
            Status::Fail,
            format!("VIP {vip} configured"),
            "absent",
            if o.mode == Mode::Tun {
                "the real server must own the VIP (on lo or the tunnel device) or it drops the forwarded packets"
            } else {
                "DR keeps the VIP as destination, so the real server must own it (on lo) or it drops every packet"
            },
            vec![addr_fix("add", vip, F::BITS, want_dev)],
        ),
        Some(p) if p.prefix != F::BITS => out.add(
            Status::Fail,
            format!("VIP {vip} prefix"),
            format!("/{} on {}", p.prefix, p.dev),
            &(whys.short)(vip, p),
            vec![
                addr_fix("del", vip, p.prefix, p.dev),
                addr_fix("add", vip, F::BITS, p.dev),
            ],
        ),
        Some(p) => out.add(
            Status::Ok,
            format!("VIP {vip} configured"),
            format!("/{} on {}", F::BITS, p.dev),
            whys.owned,
            vec![],
        ),
    }
    for p in announced {
        out.add(
            Status::Fail,
            format!("VIP {vip} not on {}", p.dev),
            format!("{} on {}", p.shown, p.dev),
            whys.announced,
            vec![addr_fix("del", vip, p.prefix, p.dev)],
        );
    }
}

/// A director's VIP: configured nowhere here (`quiet` says why that is
/// right), else a failure for each of its `places` (`local` says why).
pub(super) fn director_vip<F: Family>(
    out: &mut Out,
    vip: F,
    places: &[Place],
    (quiet, local): (&str, &str),
) {
    if places.is_empty() {
        out.add(
            Status::Ok,
            format!("VIP {vip} not local"),
            "not configured",
            quiet,
            vec![],
        );
    }
    for p in places {
        out.add(
            Status::Fail,
            format!("VIP {vip} not local"),
            format!("{} on {}", p.shown, p.dev),
            local,
            vec![addr_fix("del", vip, p.prefix, p.dev)],
        );
    }
}
