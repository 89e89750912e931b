//! Host lookups over rtnetlink: links, addresses, routes (`ip route get`
//! and the main table), and neighbours (asking the kernel to resolve one
//! when missing). Routes and neighbours are looked up for either family
//! by the same code: only the request's family differs.

use super::Error;
use crate::wire::MacAddr;
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub struct Netlink {
    handle: Handle,
    /// One request at a time: the kernel refuses a second dump on a
    /// netlink socket while one is running (EBUSY), and the control
    /// plane's tasks (applies, resolvers, refreshes) ask concurrently.
    one: tokio::sync::Mutex<()>,
}

/// How the kernel would route to an address (`ip route get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub oif: Option<u32>,
    /// The next hop when it is a router: of the destination's family, or
    /// IPv6 for an IPv4 route through an IPv6 next hop.
    pub gateway: Option<IpAddr>,
    pub local: bool,
}

impl Netlink {
    /// Opens a netlink connection driven by a task on the current runtime.
    pub fn new() -> Result<Netlink, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(Error::Open)?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            one: tokio::sync::Mutex::new(()),
        })
    }

    /// Every IPv4 address configured in this namespace, with its link index.
    pub async fn addresses(&self) -> Result<Vec<(Ipv4Addr, u32)>, Error> {
        let _one = self.one.lock().await;
        let mut out = Vec::new();
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s.try_next().await? {
            for a in &m.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip))
                | AddressAttribute::Address(IpAddr::V4(ip)) = a
                {
                    out.push((*ip, m.header.index));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The first IPv4 address on link `index`, if it has one.
    pub async fn first_address(&self, index: u32) -> Option<Ipv4Addr> {
        let addrs = self.addresses().await.ok()?;
        addrs.iter().find(|(_, i)| *i == index).map(|(a, _)| *a)
    }

    /// The first global IPv6 address on link `index` (not link-local),
    /// if it has one: the source of the ICMPv6 errors about NAT66
    /// replies, as the kernel would pick it.
    pub async fn first_address6(&self, index: u32) -> Option<Ipv6Addr> {
        let _one = self.one.lock().await;
        let mut s = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Ok(Some(m)) = s.try_next().await {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V6(ip)) = a
                    && m.header.index == index
                    && !ip.is_unicast_link_local()
                    && !ip.is_loopback()
                {
                    out.push(*ip);
                }
            }
        }
        out.sort();
        out.first().copied()
    }

    /// The name of a link index, for messages.
    pub async fn link_name(&self, index: u32) -> String {
        let _one = self.one.lock().await;
        let mut s = self.handle.link().get().match_index(index).execute();
        if let Ok(Some(l)) = s.try_next().await {
            for a in l.attributes {
                if let LinkAttribute::IfName(n) = a {
                    return n;
                }
            }
        }
        format!("if{index}")
    }

    /// How the kernel routes to `dst` now (`ip route get`), either family.
    pub async fn route_get(&self, dst: IpAddr) -> Result<RouteInfo, Error> {
        let _one = self.one.lock().await;
        let mut s = self.handle.route().get(route_request(dst)).execute();
        let mut info = RouteInfo {
            oif: None,
            gateway: None,
            local: false,
        };
        if let Some(rt) = s
            .try_next()
            .await
            .map_err(|source| Error::NoRoute { dst, source })?
        {
            info.local = rt.header.kind == RouteType::Local;
            for a in rt.attributes {
                match a {
                    RouteAttribute::Oif(i) => info.oif = Some(i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => info.gateway = Some(g.into()),
                    // RTA_VIA: an IPv4 route through an IPv6 next hop
                    // (RFC 8950, `via inet6`).
                    RouteAttribute::Gateway(RouteAddress::Inet6(g))
                    | RouteAttribute::Via(RouteVia::Inet6(g)) => info.gateway = Some(g.into()),
                    _ => {}
                }
            }
        }
        Ok(info)
    }

    /// The neighbour-table MAC for `ip` on `ifindex`, if the entry is
    /// usable: the ARP table's for IPv4, neighbour discovery's for IPv6.
    pub async fn neighbour(&self, ip: IpAddr, ifindex: u32) -> Result<Option<MacAddr>, Error> {
        let _one = self.one.lock().await;
        let family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let mut s = self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        let mut found = None;
        while let Some(n) = s.try_next().await? {
            if n.header.ifindex != ifindex {
                continue;
            }
            if matches!(
                n.header.state,
                NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
            ) {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(d)) => {
                        dst = Some(IpAddr::V4(*d));
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(d)) => {
                        dst = Some(IpAddr::V6(*d));
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => mac = MacAddr::from_slice(l),
                    _ => {}
                }
            }
            // The whole dump is read: one left running would make the
            // next request on this socket fail.
            if dst == Some(ip) && found.is_none() {
                found = mac;
            }
        }
        Ok(found)
    }

    /// Asks the kernel to resolve `ip` (an RTM_NEWNEIGH with NTF_USE, which
    /// makes the kernel send its own ARP request or, for IPv6, neighbour
    /// solicitation), without sending any traffic to the address. The
    /// kernel solicits from the link's link-local address: without one it
    /// sends nothing, and the entry stays incomplete.
    async fn trigger(&self, ip: IpAddr, ifindex: u32) -> Result<(), Error> {
        let _one = self.one.lock().await;
        self.handle
            .neighbours()
            .add(ifindex, ip)
            .state(NeighbourState::None)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await?;
        Ok(())
    }

    /// The neighbour-table MAC of `ip` (`what` names it in errors), asking
    /// the kernel to resolve it when missing.
    pub async fn resolve_neighbour(
        &self,
        ip: IpAddr,
        what: &str,
        ifindex: u32,
        ifname: &str,
    ) -> Result<MacAddr, Error> {
        if let Some(m) = self.neighbour(ip, ifindex).await? {
            return Ok(m);
        }
        self.trigger(ip, ifindex).await?;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(m) = self.neighbour(ip, ifindex).await? {
                return Ok(m);
            }
        }
        Err(Error::NoNeighbourReply {
            what: what.to_string(),
            ifname: ifname.to_string(),
            reply: match ip {
                IpAddr::V4(_) => "ARP reply",
                IpAddr::V6(_) => "neighbour advertisement",
            },
        })
    }
}

/// `ip route get DST`'s request: `dst` as a host route of its family.
fn route_request(dst: IpAddr) -> RouteMessage {
    match dst {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .build(),
    }
}

impl Netlink {
    /// Every link with its index, for the audit.
    pub async fn links(&self) -> Result<Vec<(crate::host::Link, u32)>, Error> {
        let _one = self.one.lock().await;
        use rtnetlink::packet_route::link::{LinkFlags, LinkLayerType};
        let mut out = Vec::new();
        let mut s = self.handle.link().get().execute();
        while let Some(l) = s.try_next().await? {
            let mut name = String::new();
            let mut mtu = 0;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = n.clone(),
                    LinkAttribute::Mtu(m) => mtu = *m,
                    _ => {}
                }
            }
            let t = l.header.link_layer_type;
            out.push((
                crate::host::Link {
                    up: l.header.flags.contains(LinkFlags::Up),
                    mtu,
                    loopback: t == LinkLayerType::Loopback,
                    tunnel: matches!(t, LinkLayerType::Tunnel | LinkLayerType::None),
                    name,
                },
                l.header.index,
            ));
        }
        Ok(out)
    }

    /// IPv4 addresses with link index and prefix length.
    pub async fn addresses_with_prefix(&self) -> Result<Vec<(Ipv4Addr, u32, u8)>, Error> {
        let _one = self.one.lock().await;
        let mut out = Vec::new();
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s.try_next().await? {
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(addr) {
                out.push((ip, m.header.index, m.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// The main table's IPv4 unicast routes with their output interface's
    /// index (the caller names it in `dev`), for the audit.
    pub async fn routes(&self) -> Result<Vec<(crate::host::Route, u32)>, Error> {
        let _one = self.one.lock().await;
        use rtnetlink::packet_route::route::{RouteMetric, RouteProtocol};
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut s = self.handle.route().get(msg).execute();
        let mut out = Vec::new();
        while let Some(rt) = s.try_next().await? {
            if rt.header.table != 254 || rt.header.kind != RouteType::Unicast {
                continue;
            }
            let len = rt.header.destination_prefix_length;
            let mut r = crate::host::Route {
                dst: crate::host::Prefix::DEFAULT,
                gateway: None,
                dev: String::new(),
                advmss: None,
                mtu: None,
                kernel: rt.header.protocol == RouteProtocol::Kernel,
                prefsrc: None,
            };
            let mut oif = None;
            for a in rt.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) if len > 0 => {
                        r.dst = crate::host::Prefix { addr: d, len };
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(g),
                    RouteAttribute::PrefSource(RouteAddress::Inet(p)) => r.prefsrc = Some(p),
                    RouteAttribute::Oif(i) => oif = Some(i),
                    RouteAttribute::Metrics(ms) => {
                        for m in ms {
                            match m {
                                RouteMetric::Advmss(v) => r.advmss = Some(v),
                                RouteMetric::Mtu(v) => r.mtu = Some(v),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(i) = oif {
                out.push((r, i));
            }
        }
        Ok(out)
    }
}

/// An IPv6 address as the audit reads it: the address, its link's index,
/// its prefix length and its IFA_F_* flags (tentative, dadfailed, nodad).
pub type Addr6Info = (Ipv6Addr, u32, u8, u32);

impl Netlink {
    /// Every IPv6 address with its link index, prefix length and flags
    /// (the 32-bit IFA_FLAGS attribute when the kernel sends it, else the
    /// header's 8 bits), for the audit.
    pub async fn addresses6(&self) -> Result<Vec<Addr6Info>, Error> {
        let _one = self.one.lock().await;
        let mut out = Vec::new();
        let mut req = self.handle.address().get();
        req.message_mut().header.family = AddressFamily::Inet6;
        let mut s = req.execute();
        while let Some(m) = s.try_next().await? {
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V6(ip)) => Some(*ip),
                _ => None,
            });
            let flags = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Flags(f) => Some(f.bits()),
                _ => None,
            });
            if let Some(ip) = addr {
                let flags = flags.unwrap_or(u32::from(m.header.flags.bits()));
                out.push((ip, m.header.index, m.header.prefix_len, flags));
            }
        }
        Ok(out)
    }

    /// The IPv6 proxy neighbour entries (`ip -6 neigh show proxy`): the
    /// address answered for and the link's index.
    pub async fn proxies6(&self) -> Result<Vec<(Ipv6Addr, u32)>, Error> {
        let _one = self.one.lock().await;
        let mut out = Vec::new();
        let mut s = self
            .handle
            .neighbours()
            .get()
            .proxies()
            .set_address_family(AddressFamily::Inet6)
            .execute();
        while let Some(m) = s.try_next().await? {
            for a in &m.attributes {
                if let NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) = a {
                    out.push((*ip, m.header.ifindex));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Emitable;

    fn bytes(m: &RouteMessage) -> Vec<u8> {
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        b
    }

    #[test]
    fn route_requests_are_host_routes_of_the_destinations_family() {
        // IPv4's, as uvs has always sent it: AF_INET, /32, main table,
        // static, universe, unicast, then RTA_DST.
        let v4 = bytes(&route_request("198.18.0.11".parse().unwrap()));
        let want = [
            2, 32, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0, 8, 0, 1, 0, 198, 18, 0, 11,
        ];
        assert_eq!(v4, want);
        // IPv6's: the same header but AF_INET6 and /128, and a 16-byte RTA_DST.
        let a: Ipv6Addr = "2001:2::11".parse().unwrap();
        let v6 = bytes(&route_request(a.into()));
        assert_eq!(v6[..12], [10, 128, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]);
        assert_eq!(v6[12..16], [20, 0, 1, 0]);
        assert_eq!(v6[16..], a.octets());
    }

    #[test]
    fn an_unanswered_neighbour_is_named_in_its_familys_words() {
        let e = |reply| Error::NoNeighbourReply {
            what: "real server 198.18.0.77".into(),
            ifname: "eth0".into(),
            reply,
        };
        assert_eq!(
            e("ARP reply").to_string(),
            "cannot resolve the MAC address of real server 198.18.0.77 on eth0: no ARP reply. \
             Is it up and on this segment?"
        );
        assert!(
            e("neighbour advertisement")
                .to_string()
                .contains(": no neighbour advertisement.")
        );
    }
}
