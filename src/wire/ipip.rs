//! IP-in-IP (RFC 2003, protocol 4; RFC 4213, protocol 41 for an IPv6
//! packet inside): the outer IPv4 header TUN forwarding adds, and the
//! unwrapping `uvs decap` and the probe do. The outer header follows
//! Linux IPVS (`ip_vs_tunnel_xmit`): TTL (hop limit) and DF copied from
//! the inner packet (an IPv6 one gives no DF), TOS copying DSCP and ECN
//! except that CE becomes ECT(0) (`INET_ECN_encapsulate`), id 0 with DF
//! (as Linux for atomic datagrams) and a counter otherwise. The IPv6
//! outer header is [`ip6tnl`](super::ip6tnl); [`tunnel`](super::tunnel)
//! wraps with either.

use super::ipv4::{self, Ipv4Packet, Ipv4Repr, MF};
use super::ipv6::Ipv6Packet;
use super::{Error, Result, ip_proto};
use std::net::Ipv4Addr;

/// What an outer header copies from the packet it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// The outer protocol (next header): 4 for IPv4, 41 for IPv6.
    pub protocol: u8,
    /// The outer TOS (traffic class): the inner one's DSCP and ECN, CE
    /// made ECT(0).
    pub dsfield: u8,
    /// The inner TTL or hop limit, after the director's hop.
    pub ttl: u8,
    /// The inner IPv4 header's DF (never for IPv6).
    pub df: bool,
}

impl Inner {
    /// The fields of `inner`, an IPv4 or IPv6 packet by its version
    /// (anything else: protocol 4, TOS 0, TTL 64, no DF).
    pub fn of(inner: &[u8]) -> Inner {
        let (protocol, ds, ttl, df) = match inner.first().map(|b| b >> 4) {
            Some(6) => match Ipv6Packet::new_checked(inner) {
                Ok(p) => (ip_proto::IPV6, p.traffic_class(), p.hop_limit(), false),
                Err(_) => (ip_proto::IPV6, 0, 64, false),
            },
            _ => match Ipv4Packet::new_checked(inner) {
                Ok(p) => (ip_proto::IPIP, p.tos(), p.ttl(), p.dont_frag()),
                Err(_) => (ip_proto::IPIP, 0, 64, false),
            },
        };
        let ecn = ds & 3;
        Inner {
            protocol,
            dsfield: (ds & !3) | if ecn == 3 { 2 } else { ecn },
            ttl,
            df,
        }
    }
}

/// What of the inner packet one outer packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// All of it, of this length.
    Whole(usize),
    /// `len` bytes from `off` (a multiple of 8); `more` if another
    /// fragment follows.
    Fragment { off: usize, len: usize, more: bool },
}

impl Piece {
    /// Its length in bytes.
    pub(super) fn len(&self) -> usize {
        match *self {
            Piece::Whole(len) | Piece::Fragment { len, .. } => len,
        }
    }

    /// Whether it starts the packet (then a new fragment id is taken).
    pub(super) fn first(&self) -> bool {
        matches!(*self, Piece::Whole(_) | Piece::Fragment { off: 0, .. })
    }
}

/// Writes at `out[at..]` an outer header of `header_len` bytes (by
/// `header`) and then `inner`; returns the end of the packet.
pub(super) fn wrap(
    inner: &[u8],
    out: &mut [u8],
    at: usize,
    header_len: usize,
    header: impl FnOnce(&Inner, &mut [u8], Piece) -> Result<()>,
) -> Result<usize> {
    let end = at + header_len + inner.len();
    let packet = out.get_mut(at..end).ok_or(Error::Truncated)?;
    let (hdr, body) = packet.split_at_mut(header_len);
    header(&Inner::of(inner), hdr, Piece::Whole(inner.len()))?;
    body.copy_from_slice(inner);
    Ok(end)
}

/// The outer header's room: what an inner packet may use of a link MTU.
pub const OVERHEAD: usize = ipv4::HEADER_LEN;

/// The two ends of a tunnel: the director and the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpipRepr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl IpipRepr {
    /// Writes in `hdr` the outer header for piece `p` of a packet with
    /// fields `i`. A packet without DF takes a new `id` with its first
    /// piece.
    pub(super) fn write(&self, i: &Inner, hdr: &mut [u8], p: Piece, id: &mut u16) -> Result<()> {
        let ident = if i.df {
            0
        } else {
            if p.first() {
                *id = id.wrapping_add(1);
            }
            *id
        };
        Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: i.protocol,
            payload_len: p.len(),
            ttl: i.ttl,
            tos: i.dsfield,
            ident,
            dont_frag: i.df,
        }
        .emit(hdr)?;
        if let Piece::Fragment { off, more, .. } = p {
            let mut h = Ipv4Packet::new_unchecked(hdr);
            h.set_frag_word((if more { MF } else { 0 }) | (off / 8) as u16);
            h.fill_checksum();
        }
        Ok(())
    }

    /// Writes the outer header and `inner` at `out[at..]` (the caller
    /// fills the link header in front); returns the end of the packet.
    pub fn emit(&self, inner: &[u8], out: &mut [u8], at: usize, id: &mut u16) -> Result<usize> {
        wrap(inner, out, at, OVERHEAD, |i, hdr, p| {
            self.write(i, hdr, p, id)
        })
    }
}

/// The inner packet of an IP-in-IP packet (outer header first, as a raw
/// socket delivers it), or `None` if it is not one.
pub fn inner(packet: &[u8]) -> Option<&[u8]> {
    let outer = Ipv4Packet::new_checked(packet).ok()?;
    if outer.protocol() != ip_proto::IPIP || outer.is_fragment() {
        return None;
    }
    let inner = outer.into_payload();
    let p = Ipv4Packet::new_checked(inner).ok()?;
    Some(&inner[..p.total_len()])
}

/// An IPv4 packet from a client to a VIP, TTL 63, for the tests here
/// and [`tunnel`](super::tunnel)'s.
#[cfg(test)]
pub(super) fn test_packet(protocol: u8, payload_len: usize, tos: u8, df: bool) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload_len];
    Ipv4Repr {
        src: [198, 18, 0, 10].into(),
        dst: [198, 18, 0, 100].into(),
        protocol,
        payload_len,
        ttl: 63,
        tos,
        ident: 1,
        dont_frag: df,
    }
    .emit(&mut p)
    .unwrap();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_packet as packet;

    const TUN: IpipRepr = IpipRepr {
        src: Ipv4Addr::new(198, 18, 0, 2),
        dst: Ipv4Addr::new(198, 18, 0, 11),
    };

    #[test]
    fn strips_the_outer_header_only_for_ipip() {
        let inner_pkt = packet(17, 8, 0, false);
        let mut out = vec![0u8; 64];
        let mut id = 0;
        let n = TUN.emit(&inner_pkt, &mut out, 0, &mut id).unwrap();
        let mut pkt = out[..n].to_vec();
        assert_eq!(inner(&pkt), Some(&inner_pkt[..]));
        pkt[9] = 17;
        assert_eq!(inner(&pkt), None);
        assert_eq!(inner(&pkt[..30]), None);
        assert_eq!(inner(&[]), None);
    }

    #[test]
    fn outer_header_copies_ttl_df_and_ecn_but_not_ce() {
        let mut out = vec![0u8; 128];
        let mut id = 7;
        let n = TUN
            .emit(&packet(6, 20, 0xb8 | 3, true), &mut out, 14, &mut id)
            .unwrap();
        let o = Ipv4Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!(
            (o.ttl(), o.tos(), o.dont_frag(), o.ident()),
            (63, 0xba, true, 0)
        );
        assert!(o.verify_checksum());
        TUN.emit(&packet(6, 20, 1, false), &mut out, 14, &mut id)
            .unwrap();
        let o = Ipv4Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!((o.tos(), o.dont_frag(), o.ident()), (1, false, 8));
    }
}
