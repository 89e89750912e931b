//! The outer header of a TUN packet, of the real server's family:
//! [`ipip`](super::ipip) for an IPv4 one, [`ip6tnl`](super::ip6tnl) for
//! an IPv6 one, whatever the family inside.

use super::ip6tnl::{self, Ip6TnlRepr};
use super::ipip::{self, IpipRepr};
use super::{EtherType, Result};

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

    /// Writes the outer header and `inner` at `out[headroom..]`; `id` is
    /// the IPv4 id counter (its low 16 bits).
    pub fn emit(
        &self,
        inner: &[u8],
        out: &mut [u8],
        headroom: usize,
        id: &mut u32,
    ) -> Result<usize> {
        match self {
            TunnelRepr::V4(t) => with_id16(id, |id| t.emit(inner, out, headroom, id)),
            TunnelRepr::V6(t) => t.emit(inner, out, headroom),
        }
    }

    /// Sends `inner` in outer fragments of at most `room` bytes after the
    /// outer header ([`IpipRepr::emit_fragments`],
    /// [`Ip6TnlRepr::emit_fragments`]).
    pub fn emit_fragments(
        &self,
        inner: &[u8],
        room: usize,
        out: &mut [u8],
        headroom: usize,
        id: &mut u32,
        send: impl FnMut(&[u8]) -> bool,
    ) -> Result<bool> {
        match self {
            TunnelRepr::V4(t) => with_id16(id, |id| {
                t.emit_fragments(inner, room, out, headroom, id, send)
            }),
            TunnelRepr::V6(t) => t.emit_fragments(inner, room, out, headroom, id, send),
        }
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
    use crate::wire::{Ipv4Packet, ip_proto};
    use std::net::Ipv4Addr;

    /// An IPv6 packet inside (6in4): protocol 41, its hop limit as TTL,
    /// its traffic class as TOS, no DF (an IPv6 packet has none).
    #[test]
    fn six_in_four_takes_protocol_41_and_the_hop_limit() {
        let mut inner = crate::wire::ipv6::test_packet(
            (
                "2001:2::10".parse().unwrap(),
                "2001:2::100".parse().unwrap(),
            ),
            ip_proto::UDP,
            &[1; 8],
            8,
        );
        inner[0] = 0x6b; // traffic class 0xb3: DSCP 0x2c, CE
        inner[1] = 0x30;
        inner[7] = 17;
        let mut out = vec![0u8; 128];
        let mut id = 0x1_0005;
        let t = TunnelRepr::V4(IpipRepr {
            src: Ipv4Addr::new(198, 18, 0, 2),
            dst: Ipv4Addr::new(198, 18, 0, 11),
        });
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
}
