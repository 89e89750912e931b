//! IPv6 tunnels (RFC 2473): the outer IPv6 header TUN forwarding puts
//! around a packet for an IPv6 real server, IPv6-in-IPv6 or IPv4-in-IPv6,
//! as Linux IPVS writes it (`ip_vs_tunnel_xmit_v6`): next header 41 or 4
//! by the inner packet, hop limit the inner TTL or hop limit (after the
//! director's hop), traffic class the inner DSCP and ECN with CE made
//! ECT(0), flow label 0. An outer packet over the link's MTU whose inner
//! packet may be cut (IPv4 without DF) is sent as IPv6 fragments, as the
//! kernel's `ip6_fragment` does for IPVS (`ignore_df`).

use super::ipip::Inner;
use super::ipv6::{self, Ipv6Repr};
use super::{Error, Result, ip_proto};
use std::net::Ipv6Addr;

/// The outer header's room: what an inner packet may use of a link MTU.
pub const OVERHEAD: usize = ipv6::HEADER_LEN;
/// A Fragment header's length.
const FRAG_LEN: usize = 8;

/// The two ends of an IPv6 tunnel: the director and the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip6TnlRepr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ip6TnlRepr {
    /// The outer header for `payload_len` bytes after it, of which the
    /// first is of type `next_header`.
    fn outer(&self, inner: &Inner, next_header: u8, payload_len: usize) -> Ipv6Repr {
        Ipv6Repr {
            src: self.src,
            dst: self.dst,
            next_header,
            payload_len,
            hop_limit: inner.ttl,
            traffic_class: inner.dsfield,
            flow_label: 0,
        }
    }

    /// Writes the outer header and `inner` at `out[headroom..]` (the caller
    /// fills the link header in front); returns the end of the packet.
    pub fn emit(&self, inner: &[u8], out: &mut [u8], headroom: usize) -> Result<usize> {
        let start = headroom + ipv6::HEADER_LEN;
        let end = start + inner.len();
        if out.len() < end {
            return Err(Error::Truncated);
        }
        let i = Inner::of(inner);
        self.outer(&i, i.protocol, inner.len())
            .emit(&mut out[headroom..start])?;
        out[start..end].copy_from_slice(inner);
        Ok(end)
    }

    /// Sends `inner` as IPv6 fragments each taking at most `room` bytes
    /// after the outer header (Fragment header included), built at
    /// `out[headroom..]` and handed to `send` with the caller's link
    /// header in front; `id` numbers the packet. False if any send failed.
    pub fn emit_fragments(
        &self,
        inner: &[u8],
        room: usize,
        out: &mut [u8],
        headroom: usize,
        id: &mut u32,
        mut send: impl FnMut(&[u8]) -> bool,
    ) -> Result<bool> {
        let step = (room.saturating_sub(FRAG_LEN) & !7).max(8);
        let start = headroom + ipv6::HEADER_LEN + FRAG_LEN;
        if out.len() < start + step.min(inner.len()) {
            return Err(Error::Truncated);
        }
        let i = Inner::of(inner);
        *id = id.wrapping_add(1);
        let mut ok = true;
        let mut off = 0;
        while off < inner.len() {
            let end = (off + step).min(inner.len());
            let more = end < inner.len();
            self.outer(&i, ip_proto::FRAGMENT, FRAG_LEN + end - off)
                .emit(&mut out[headroom..])?;
            let f = &mut out[headroom + ipv6::HEADER_LEN..start];
            f[0] = i.protocol;
            f[1] = 0;
            // Offset in 8-byte units in the top 13 bits, M in the lowest.
            let word = ((off / 8) as u16) << 3 | u16::from(more);
            f[2..4].copy_from_slice(&word.to_be_bytes());
            f[4..8].copy_from_slice(&id.to_be_bytes());
            let n = start + end - off;
            out[start..n].copy_from_slice(&inner[off..end]);
            ok &= send(&out[..n]);
            off = end;
        }
        Ok(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv6Packet;
    use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};

    const TUN: Ip6TnlRepr = Ip6TnlRepr {
        src: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2),
        dst: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11),
    };

    /// An IPv6 UDP packet with traffic class `tc` and hop limit 63.
    fn packet6(tc: u8, len: usize) -> Vec<u8> {
        let mut p = ipv6::test_packet(
            (TUN.src, "2001:2::100".parse().unwrap()),
            ip_proto::UDP,
            &vec![9u8; len],
            len,
        );
        let mut v = Ipv6Packet::new_unchecked(&mut p[..]);
        v.set_ver_tc_flow(6 << 28 | u32::from(tc) << 20 | 0x12345);
        v.set_hop_limit(63);
        p
    }

    fn packet4(df: bool, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20 + len];
        Ipv4Repr {
            src: [198, 18, 0, 10].into(),
            dst: [198, 18, 0, 100].into(),
            protocol: ip_proto::UDP,
            payload_len: len,
            ttl: 41,
            tos: 0x28,
            ident: 1,
            dont_frag: df,
        }
        .emit(&mut p)
        .unwrap();
        p
    }

    /// As ip_vs_tunnel_xmit_v6: next header 41, the inner hop limit, the
    /// traffic class with CE made ECT(0), flow label 0.
    #[test]
    fn six_in_six_copies_hop_limit_and_traffic_class_not_the_flow_label() {
        let inner = packet6(0xb8 | 3, 20);
        let mut out = vec![0u8; 200];
        let n = TUN.emit(&inner, &mut out, 14).unwrap();
        let o = Ipv6Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!(
            (
                o.next_header(),
                o.hop_limit(),
                o.traffic_class(),
                o.flow_label()
            ),
            (41, 63, 0xba, 0)
        );
        assert_eq!((o.src_addr(), o.dst_addr()), (TUN.src, TUN.dst));
        assert_eq!(o.payload(), &inner[..]);
        // ECT(1) stays.
        TUN.emit(&packet6(0x01, 20), &mut out, 14).unwrap();
        let o = Ipv6Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!(o.traffic_class(), 0x01);
        assert_eq!(
            TUN.emit(&inner, &mut out[..n - 1], 14),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn four_in_six_takes_next_header_4_and_the_ttl() {
        let inner = packet4(true, 12);
        let mut out = vec![0u8; 200];
        let n = TUN.emit(&inner, &mut out, 0).unwrap();
        let o = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (o.next_header(), o.hop_limit(), o.traffic_class()),
            (4, 41, 0x28)
        );
        assert_eq!(o.payload_len(), inner.len());
    }

    /// Fragments carry a Fragment header naming the inner protocol, one
    /// id, offsets in 8-byte units, M on all but the last; together they
    /// are the inner packet.
    #[test]
    fn fragments_cover_the_inner_packet_within_the_room() {
        let inner = packet4(false, 100);
        let mut out = vec![0u8; 300];
        let mut id = 6;
        let mut got = Vec::new();
        let ok = TUN
            .emit_fragments(&inner, 56, &mut out, 14, &mut id, |f| {
                got.push(f[14..].to_vec());
                true
            })
            .unwrap();
        assert!(ok);
        assert_eq!(got.len(), 3);
        let mut whole = Vec::new();
        for (i, f) in got.iter().enumerate() {
            let p = Ipv6Packet::new_checked(&f[..]).unwrap();
            assert!(p.payload_len() <= 56);
            assert_eq!(p.next_header(), ip_proto::FRAGMENT);
            let h = p.payload();
            assert_eq!(h[0], 4);
            let word = u16::from_be_bytes([h[2], h[3]]);
            assert_eq!(usize::from(word >> 3) * 8, i * 48);
            assert_eq!(word & 1 == 1, i < 2);
            assert_eq!(u32::from_be_bytes([h[4], h[5], h[6], h[7]]), 7);
            whole.extend_from_slice(&h[8..]);
        }
        assert_eq!(whole, inner);
        assert!(Ipv4Packet::new_checked(&whole[..]).is_ok());
    }
}
