//! A packet of the director's own put on the path its data plane uses to
//! a real server: as is to the next hop's MAC (DR: the VIP stays the
//! destination), or wrapped in the outer header TUN forwarding sends
//! (IPv4 to an IPv4 real server, IPv6 to an IPv6 one). `uvs probe`'s
//! cases and the via-VIP health check build their frames here, so both
//! test exactly what the data plane sends.

use super::ip6tnl::Ip6TnlRepr;
use super::ipip::IpipRepr;
use super::ipv4::Ipv4Repr;
use super::tunnel::TunnelRepr;
use super::{EtherType, Ipv6Repr, MacAddr, ethernet};
use std::net::IpAddr;

const ETH: usize = ethernet::HEADER_LEN;

/// How the packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// As is, to the next hop's MAC (DR, or a packet to the server itself).
    Direct,
    /// In IP-in-IP (or IPv6-in-IPv6) from the director to the server (TUN).
    Tunnel,
}

/// The two ends of the path: the director's link and address, the real
/// server and the MAC of the next hop towards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub director_mac: MacAddr,
    pub hop_mac: MacAddr,
    pub director: IpAddr,
    pub rip: IpAddr,
}

/// Writes an IPv4 or IPv6 header from `src` to `dst` (one family) for
/// `payload_len` bytes of `protocol` at the start of `out` (TTL 64, DF);
/// returns its length, or `None` if it does not fit or the families mix.
pub fn ip_header(
    out: &mut [u8],
    (src, dst): (IpAddr, IpAddr),
    protocol: u8,
    payload_len: usize,
) -> Option<usize> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let ip = Ipv4Repr {
                src,
                dst,
                protocol,
                payload_len,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
            };
            ip.emit(out).ok()?;
            Some(super::ipv4::HEADER_LEN)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ip = Ipv6Repr {
                src,
                dst,
                next_header: protocol,
                payload_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            ip.emit(out.get_mut(..super::ipv6::HEADER_LEN)?).ok()?;
            Some(super::ipv6::HEADER_LEN)
        }
        _ => None,
    }
}

/// The length of the IP header `ip_header` writes for a packet to `dst`.
pub fn ip_header_len(dst: IpAddr) -> usize {
    match dst {
        IpAddr::V4(_) => super::ipv4::HEADER_LEN,
        IpAddr::V6(_) => super::ipv6::HEADER_LEN,
    }
}

/// The outer header from the director to the real server (one family).
fn tunnel(director: IpAddr, rip: IpAddr) -> Option<TunnelRepr> {
    match (director, rip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(TunnelRepr::V4(IpipRepr { src, dst })),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(TunnelRepr::V6(Ip6TnlRepr { src, dst })),
        _ => None,
    }
}

/// Writes into `out` the Ethernet frame that carries the IP `packet`
/// along `path` as `carry` says; returns its length, or `None` if it does
/// not fit, `packet` is not IP, or a tunnel's ends mix families.
pub fn frame(carry: Carry, path: &Path, packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let (ethertype, end) = match carry {
        Carry::Direct => {
            let ethertype = match packet.first()? >> 4 {
                4 => EtherType::IPV4,
                6 => EtherType::IPV6,
                _ => return None,
            };
            let end = ETH + packet.len();
            out.get_mut(ETH..end)?.copy_from_slice(packet);
            (ethertype, end)
        }
        Carry::Tunnel => {
            // An inner IPv4 packet has DF, so an IPv4 outer header has it
            // too, with id 0 (as the data plane's TUN forwarding does).
            let t = tunnel(path.director, path.rip)?;
            (t.ethertype(), t.emit(packet, out, ETH, &mut 0).ok()?)
        }
    };
    ethernet::emit_header(
        out.get_mut(..ETH)?,
        path.hop_mac,
        path.director_mac,
        ethertype,
    );
    Some(end)
}
