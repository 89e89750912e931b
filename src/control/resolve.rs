//! From host facts to next hops: the link and MAC the data plane sends a
//! real server's packets to, as its forwarding method requires, and the
//! kernel's routes towards clients that NAT replies follow.

use crate::host::netlink::Netlink;
use crate::lvs::service::Forward;
use crate::lvs::table::{LinkRoute, NextHop};
use std::net::IpAddr;

/// The director's links: interface index and name, in link order.
pub type Links = [(u32, String)];

/// Why a real server can never be reached as routed now.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// DR, and the kernel has no route: not on-link.
    #[error("{0}: direct routing (-g) needs the real server on the director's own segment")]
    NoRoute(#[source] crate::host::Error),
    #[error(
        "real server {0} is an address of the director itself; uvs does not forward to local \
         addresses"
    )]
    Local(IpAddr),
    /// DR, and the route goes through a router.
    #[error(
        "real server {ip} is not on-link on {links}: the route goes via {gateway}. \
         Direct routing (-g) needs the real server on the director's own segment; \
         use tunneling (-i) for servers behind a router"
    )]
    Gatewayed {
        ip: IpAddr,
        links: String,
        gateway: IpAddr,
    },
    /// The route leaves through `other`, not a director link.
    #[error("real server {ip} is reached through {other}, not through {links} where uvs {}",
        match dr {
            true => "captures; direct routing needs it on the segment of one of them".to_string(),
            false => format!("sends; add {other} with another --interface"),
        })]
    OtherLink {
        ip: IpAddr,
        other: String,
        links: String,
        dr: bool,
    },
}

/// A real server's next hop as far as it is known now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    Resolved(NextHop),
    /// The route is right but the MAC does not resolve (the server, or its
    /// router, is down or not there yet): kept and retried in the
    /// background, never scheduled meanwhile.
    Pending {
        link: u8,
        why: String,
    },
}

/// The link and MAC uvs sends a real server's packets to: DR sends to the
/// server itself, which must be on-link (as LVS/DR requires); TUN and NAT
/// send to the next hop, so the server may sit behind a router. Either
/// way the route must leave through one of the director's links. An
/// error is what can never work as routed now (a local address, DR
/// off-link, a route through another interface); a server that merely
/// has no route or does not answer ARP (or, for IPv6, neighbour
/// solicitations) yet is `Pending`. Both families take the same path
/// through the kernel's routing and neighbour tables.
pub async fn next_hop(
    nl: &Netlink,
    ip: IpAddr,
    fwd: Forward,
    links: &Links,
) -> Result<Hop, ResolveError> {
    // TUN and NAT without a route yet (the network is not up, say): kept
    // and retried, like a server that does not answer ARP. DR without a
    // route is not on-link by the routing table: that is an error.
    let r = match (nl.route_get(ip).await, fwd) {
        (Ok(r), _) => r,
        (Err(why), Forward::Route) => return Err(ResolveError::NoRoute(why)),
        (Err(why), _) => {
            return Ok(Hop::Pending {
                link: 0,
                why: why.to_string(),
            });
        }
    };
    if r.local {
        return Err(ResolveError::Local(ip));
    }
    let names: Vec<&str> = links.iter().map(|(_, n)| n.as_str()).collect();
    let names = names.join(", ");
    let dr = fwd == Forward::Route;
    if let (true, Some(gateway)) = (dr, r.gateway) {
        return Err(ResolveError::Gatewayed {
            ip,
            links: names,
            gateway,
        });
    }
    let Some(link) = links.iter().position(|(i, _)| Some(*i) == r.oif) else {
        let other = match r.oif {
            Some(o) => nl.link_name(o).await,
            None => "no interface".to_string(),
        };
        return Err(ResolveError::OtherLink {
            ip,
            other,
            links: names,
            dr,
        });
    };
    let (ifindex, ifname) = (links[link].0, links[link].1.as_str());
    let (hop, what) = match r.gateway {
        Some(gw) => (gw, format!("the router {gw} towards real server {ip}")),
        None => (ip, format!("real server {ip}")),
    };
    Ok(
        match nl.resolve_neighbour(hop, &what, ifindex, ifname).await {
            Ok(mac) => Hop::Resolved(NextHop {
                link: link as u8,
                mac,
            }),
            Err(why) => Hop::Pending {
                link: link as u8,
                why: why.to_string(),
            },
        },
    )
}

/// The kernel's main-table routes that leave through a director link,
/// with their gateways' MACs from the neighbour table (asking the kernel
/// to resolve missing ones). Only NAT replies use them.
pub async fn link_routes(nl: &Netlink, links: &Links) -> Vec<LinkRoute> {
    let Ok(routes) = nl.routes().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (r, oif) in routes {
        let Some(link) = links.iter().position(|(i, _)| *i == oif) else {
            continue;
        };
        let gateway_mac = match r.gateway {
            None => None,
            Some(gw) => {
                let what = format!("the gateway {gw} of route {}", r.dst);
                let name = &links[link].1;
                nl.resolve_neighbour(gw.into(), &what, oif, name).await.ok()
            }
        };
        out.push(LinkRoute {
            dst: r.dst,
            link: link as u8,
            gateway_mac,
        });
    }
    out.sort_by_key(|r| (std::cmp::Reverse(r.dst.len), r.dst.addr, r.link));
    out
}

/// The MAC of a real server (DR, on its own link) or of the next hop
/// towards it (TUN, NAT: the server itself or its router), if the
/// neighbour table has it now: the periodic refresh that follows a MAC
/// that changes behind the same address.
pub async fn current_mac(
    nl: &Netlink,
    addr: IpAddr,
    fwd: Forward,
    link: u8,
    links: &Links,
) -> Option<crate::wire::MacAddr> {
    let (hop, oif) = match fwd {
        Forward::Route => (addr, links.get(usize::from(link))?.0),
        Forward::Tunnel | Forward::Masq => {
            let r = nl.route_get(addr).await.ok()?;
            (r.gateway.unwrap_or(addr), r.oif?)
        }
    };
    nl.neighbour(hop, oif).await.ok().flatten()
}
