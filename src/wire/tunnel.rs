//! The outer header of a TUN packet, of the real server's family:
//! [`ipip`](super::ipip) for an IPv4 one, [`ip6tnl`](super::ip6tnl) for
//! an IPv6 one, whatever the family inside.

use super::ip6tnl::{self, Ip6TnlRepr};
use super::ipip::{self, Inner, IpipRepr, Piece};
use super::{Error, EtherType, Result};

/// The outer header of either family, from the director's tunnel source
/// to a real server: the data plane builds one per packet and wraps with
/// it whatever the inner family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelRepr {
    V4(IpipRepr),
    V6(Ip6TnlRepr),
}

impl TunnelRepr {
    /// The outer header's length.
    pub fn overhead(&self) -> usize {
        match self {
            TunnelRepr::V4(_) => ipip::OVERHEAD,
            TunnelRepr::V6(_) => ip6tnl::OVERHEAD,
        }
    }

    /// The outer packet's EtherType.
    pub fn ethertype(&self) -> u16 {
        match self {
            TunnelRepr::V4(_) => EtherType::IPV4,
            TunnelRepr::V6(_) => EtherType::IPV6,
        }
    }

    /// The outer header's length before a piece of the inner packet:
    /// an IPv6 one takes a Fragment header too.
    fn header_len(&self, frag: bool) -> usize {
        match self {
            TunnelRepr::V6(_) if frag => ip6tnl::OVERHEAD + ip6tnl::FRAG_LEN,
            _ => self.overhead(),
        }
    }

    /// Writes in `hdr` the outer header for piece `p` of `i`'s packet;
    /// `id` is the fragment id counter, of which IPv4 takes the low 16
    /// bits.
    fn write(&self, i: &Inner, hdr: &mut [u8], p: Piece, id: &mut u32) -> Result<()> {
        match self {
            TunnelRepr::V4(t) => with_id16(id, |id| t.write(i, hdr, p, id)),
            TunnelRepr::V6(t) => t.write(i, hdr, p, id),
        }
    }

    /// Writes the outer header and `inner` at `out[headroom..]` (the
    /// caller fills the link header in front); returns the end of the
    /// packet. `id` is the fragment id counter.
    pub fn emit(
        &self,
        inner: &[u8],
        out: &mut [u8],
        headroom: usize,
        id: &mut u32,
    ) -> Result<usize> {
        ipip::wrap(inner, out, headroom, self.overhead(), |i, hdr, p| {
            self.write(i, hdr, p, id)
        })
    }

    /// Sends `inner` in outer fragments, each taking at most `room` bytes
    /// after the outer header (an IPv6 one's Fragment header included),
    /// built at `out[headroom..]` and handed to `send` with the caller's
    /// link header in front; `id` numbers them. False if any send failed.
    pub fn emit_fragments(
        &self,
        inner: &[u8],
        room: usize,
        out: &mut [u8],
        headroom: usize,
        id: &mut u32,
        mut send: impl FnMut(&[u8]) -> bool,
    ) -> Result<bool> {
        let extra = self.header_len(true) - self.overhead();
        // All but the last piece a multiple of 8 bytes.
        let step = (room.saturating_sub(extra) & !7).max(8);
        let start = headroom + self.header_len(true);
        if out.len() < start + step.min(inner.len()) {
            return Err(Error::Truncated);
        }
        let i = Inner::of(inner);
        let mut ok = true;
        let mut off = 0;
        while off < inner.len() {
            let end = (off + step).min(inner.len());
            let piece = Piece::Fragment {
                off,
                len: end - off,
                more: end < inner.len(),
            };
            self.write(&i, &mut out[headroom..start], piece, id)?;
            let n = start + end - off;
            out[start..n].copy_from_slice(&inner[off..end]);
            ok &= send(&out[..n]);
            off = end;
        }
        Ok(ok)
    }
}

/// Runs `f` with the low 16 bits of `id` as an IPv4 id counter.
fn with_id16<R>(id: &mut u32, f: impl FnOnce(&mut u16) -> R) -> R {
    let mut v4 = *id as u16;
    let r = f(&mut v4);
    *id = (*id & !0xffff) | u32::from(v4);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipip::test_packet as packet4;
    use crate::wire::ipv4::MF;
    use crate::wire::{Ipv4Packet, Ipv6Packet, ip_proto, ipv6};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpipRepr = IpipRepr {
        src: Ipv4Addr::new(198, 18, 0, 2),
        dst: Ipv4Addr::new(198, 18, 0, 11),
    };
    const ENDS6: Ip6TnlRepr = Ip6TnlRepr {
        src: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2),
        dst: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11),
    };
    const V6: TunnelRepr = TunnelRepr::V6(ENDS6);

    /// An IPv6 UDP packet with traffic class `tc` and hop limit 63.
    fn packet6(tc: u8, len: usize) -> Vec<u8> {
        let mut p = ipv6::test_packet(
            (ENDS6.src, "2001:2::100".parse().unwrap()),
            ip_proto::UDP,
            &vec![9u8; len],
            len,
        );
        let mut v = Ipv6Packet::new_unchecked(&mut p[..]);
        v.set_ver_tc_flow(6 << 28 | u32::from(tc) << 20 | 0x12345);
        v.set_hop_limit(63);
        p
    }

    /// The outer packets (link header cut off) `tun` sends for `inner` in
    /// fragments with `room`.
    fn fragments(tun: TunnelRepr, inner: &[u8], room: usize, id: &mut u32) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; 300];
        let mut got = Vec::new();
        let ok = tun.emit_fragments(inner, room, &mut out, 14, id, |f| {
            got.push(f[14..].to_vec());
            true
        });
        assert_eq!(ok, Ok(true));
        got
    }

    /// An IPv6 packet inside (6in4): protocol 41, its hop limit as TTL,
    /// its traffic class as TOS, no DF (an IPv6 packet has none).
    #[test]
    fn six_in_four_takes_protocol_41_and_the_hop_limit() {
        let mut inner = packet6(0xb3, 8); // DSCP 0x2c, CE
        inner[7] = 17;
        let mut out = vec![0u8; 128];
        let mut id = 0x1_0005;
        let t = TunnelRepr::V4(V4);
        let n = t.emit(&inner, &mut out, 14, &mut id).unwrap();
        let o = Ipv4Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!(
            (o.protocol(), o.ttl(), o.tos(), o.dont_frag()),
            (41, 17, 0xb2, false)
        );
        assert!(o.verify_checksum());
        assert_eq!((o.ident(), id), (6, 0x1_0006));
        assert_eq!(o.payload(), &inner[..]);
        assert_eq!(t.overhead(), 20);
    }

    #[test]
    fn ipv4_fragments_share_an_id_and_cover_the_packet() {
        let inner = packet4(17, 100, 0, false);
        let got = fragments(TunnelRepr::V4(V4), &inner, 50, &mut 0);
        assert_eq!(got.len(), 3);
        let mut whole = Vec::new();
        for (i, f) in got.iter().enumerate() {
            let p = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.ident(), 1);
            assert_eq!(p.frag_offset(), (i * 48 / 8) as u16);
            assert_eq!(p.frag_word() & MF != 0, i < 2);
            whole.extend_from_slice(p.payload());
        }
        assert_eq!(whole, inner);
    }

    /// As ip_vs_tunnel_xmit_v6: next header 41, the inner hop limit, the
    /// traffic class with CE made ECT(0), flow label 0.
    #[test]
    fn six_in_six_copies_hop_limit_and_traffic_class_not_the_flow_label() {
        let inner = packet6(0xb8 | 3, 20);
        let mut out = vec![0u8; 200];
        let n = V6.emit(&inner, &mut out, 14, &mut 0).unwrap();
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
        assert_eq!((o.src_addr(), o.dst_addr()), (ENDS6.src, ENDS6.dst));
        assert_eq!(o.payload(), &inner[..]);
        // ECT(1) stays.
        V6.emit(&packet6(0x01, 20), &mut out, 14, &mut 0).unwrap();
        let o = Ipv6Packet::new_checked(&out[14..n]).unwrap();
        assert_eq!(o.traffic_class(), 0x01);
        assert_eq!(
            V6.emit(&inner, &mut out[..n - 1], 14, &mut 0),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn four_in_six_takes_next_header_4_and_the_ttl() {
        let inner = packet4(ip_proto::UDP, 12, 0x28, true);
        let mut out = vec![0u8; 200];
        let n = V6.emit(&inner, &mut out, 0, &mut 0).unwrap();
        let o = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (o.next_header(), o.hop_limit(), o.traffic_class()),
            (4, 63, 0x28)
        );
        assert_eq!(o.payload_len(), inner.len());
    }

    /// Fragments carry a Fragment header naming the inner protocol, one
    /// id, offsets in 8-byte units, M on all but the last; together they
    /// are the inner packet.
    #[test]
    fn ipv6_fragments_cover_the_inner_packet_within_the_room() {
        let inner = packet4(ip_proto::UDP, 100, 0, false);
        let got = fragments(V6, &inner, 56, &mut 6);
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
