//! IPv6 tunnels (RFC 2473): the outer IPv6 header TUN forwarding puts
//! around a packet for an IPv6 real server, IPv6-in-IPv6 or IPv4-in-IPv6,
//! as Linux IPVS writes it (`ip_vs_tunnel_xmit_v6`): next header 41 or 4
//! by the inner packet, hop limit the inner TTL or hop limit (after the
//! director's hop), traffic class the inner DSCP and ECN with CE made
//! ECT(0), flow label 0. An outer packet over the link's MTU whose inner
//! packet may be cut (IPv4 without DF) is sent as IPv6 fragments, as the
//! kernel's `ip6_fragment` does for IPVS (`ignore_df`).

use super::ipip::{Inner, Piece};
use super::ipv6::{self, Ipv6Repr};
use super::{Error, Result, ip_proto};
use std::net::Ipv6Addr;

/// The outer header's room: what an inner packet may use of a link MTU.
pub const OVERHEAD: usize = ipv6::HEADER_LEN;
/// A Fragment header's length.
pub const FRAG_LEN: usize = 8;

/// The two ends of an IPv6 tunnel: the director and the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip6TnlRepr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ip6TnlRepr {
    /// Writes in `hdr` the outer header for piece `p` of a packet with
    /// fields `i`: a fragment after a Fragment header, the first taking a
    /// new `id`.
    pub(super) fn write(&self, i: &Inner, hdr: &mut [u8], p: Piece, id: &mut u32) -> Result<()> {
        let mut outer = Ipv6Repr {
            src: self.src,
            dst: self.dst,
            next_header: i.protocol,
            payload_len: p.len(),
            hop_limit: i.ttl,
            traffic_class: i.dsfield,
            flow_label: 0,
        };
        let Piece::Fragment { off, more, .. } = p else {
            return outer.emit(hdr);
        };
        if p.first() {
            *id = id.wrapping_add(1);
        }
        outer.next_header = ip_proto::FRAGMENT;
        outer.payload_len += FRAG_LEN;
        outer.emit(hdr)?;
        let f = hdr
            .get_mut(ipv6::HEADER_LEN..ipv6::HEADER_LEN + FRAG_LEN)
            .ok_or(Error::Truncated)?;
        f[0] = i.protocol;
        f[1] = 0;
        // Offset in 8-byte units in the top 13 bits, M in the lowest.
        let word = ((off / 8) as u16) << 3 | u16::from(more);
        f[2..4].copy_from_slice(&word.to_be_bytes());
        f[4..8].copy_from_slice(&id.to_be_bytes());
        Ok(())
    }
}
