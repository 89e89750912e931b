//! The addresses HA takes (docs/ha.md): a peer's (`--peer`), the
//! witness's (`--witness`) and the one `uvs witness` listens on, of
//! either family.

use std::net::{IpAddr, SocketAddr};

/// A witness address that does not parse (`--witness`, `uvs witness
/// --listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadWitness {
    #[error("port 0")]
    PortZero,
    #[error("give an IPv4 or IPv6 address, or ADDR:PORT ([ADDR]:PORT for IPv6)")]
    NotAnAddress,
    /// An address a director cannot talk to (`ha_unusable`).
    #[error("{0}")]
    Unusable(&'static str),
}

/// Why a director cannot take `ip` for a peer's or the witness's
/// address: heartbeats are unicast, and a peer is known by the source of
/// its datagrams (a link-local address would also need its interface).
pub fn ha_unusable(ip: IpAddr) -> Option<&'static str> {
    match ip {
        _ if ip.is_unspecified() => Some("unspecified: give the host's own address"),
        _ if ip.is_multicast() => Some("multicast: heartbeats are unicast"),
        IpAddr::V4(a) if a.is_broadcast() => Some("broadcast: heartbeats are unicast"),
        IpAddr::V6(a) if a.is_unicast_link_local() => {
            Some("link-local: give a global or unique local address")
        }
        _ => None,
    }
}

/// `ADDR`, `ADDR:PORT` or `[ADDR]:PORT` (the witness's port by default),
/// as `uvs witness --listen` takes it: any address of the host.
pub fn listen_addr(s: &str) -> Result<SocketAddr, BadWitness> {
    let a = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => s
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, crate::ha::witness::DEFAULT_PORT))
            .map_err(|_| BadWitness::NotAnAddress)?,
    };
    match a.port() {
        0 => Err(BadWitness::PortZero),
        // Without a scope or flow label: a datagram's source compares
        // equal to it.
        _ => Ok(SocketAddr::new(a.ip().to_canonical(), a.port())),
    }
}

/// The witness's address as a director takes it (`--witness`): as
/// [`listen_addr`], and one it can send to.
pub fn witness_addr(s: &str) -> Result<SocketAddr, BadWitness> {
    let a = listen_addr(s)?;
    match ha_unusable(a.ip()) {
        Some(why) => Err(BadWitness::Unusable(why)),
        None => Ok(a),
    }
}
