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
mod frame;
pub mod responder;
pub mod sender;
mod verdict;

pub use error::Error;
pub use frame::{build, recognise};
pub use verdict::{Verdict, render, verdict};

use crate::wire::MacAddr;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default TCP port of the responder's control connection; probes go to
/// UDP port `port + 1`.
pub const DEFAULT_PORT: u16 = 7410;

/// The source a client would have: TEST-NET-1 (RFC 5737), never routed.
pub const DEFAULT_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// An IPv6 VIP's: the documentation prefix (RFC 3849), never routed.
pub const DEFAULT_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The client stand-in for a VIP of `vip`'s family.
pub fn default_client(vip: IpAddr) -> IpAddr {
    match vip {
        IpAddr::V4(_) => DEFAULT_CLIENT.into(),
        IpAddr::V6(_) => DEFAULT_CLIENT6.into(),
    }
}

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

/// The addresses a probe run needs. The director is of the real
/// server's family, the client of the VIP's; the two families may differ
/// (then only TUN's cases can be built, as IPVS tunnels only).
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub director_mac: MacAddr,
    /// MAC of the next hop towards the real server (itself, or a router).
    pub hop_mac: MacAddr,
    pub director: IpAddr,
    pub rip: IpAddr,
    pub vip: IpAddr,
    pub client: IpAddr,
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

/// What happened to one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub case: Case,
    /// False when the case could not be sent (DR to a server behind a
    /// router, or of the VIP's other family).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_only_as_written() {
        assert_eq!(
            parse_marker(marker(7, Case::Tun).as_bytes()),
            Some((7, Case::Tun))
        );
        assert_eq!(parse_marker(b"uvs-probe 12 plain"), None);
        assert_eq!(parse_marker(b"uvs-probe 000000000000000g plain"), None);
        assert_eq!(parse_marker(b"uvs-probe 0000000000000001 nope"), None);
        assert_eq!(
            parse_marker(b"uvs-probe 0000000000000001 tun"),
            Some((1, Case::Tun))
        );
    }
}
