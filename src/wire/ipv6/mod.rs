//! IPv6 headers (RFC 8200); the walk over their extension headers to the
//! upper-layer header is `ext`.

use super::{Error, Result, clamp, clamp_mut, need};
use std::net::Ipv6Addr;

view! {
    /// A view over an IPv6 packet. `new_checked` guarantees that the fixed
    /// header and the `payload_len` bytes after it lie inside the buffer;
    /// bytes past them are link-layer padding, not part of the packet, and
    /// `payload` leaves them out. Jumbograms (payload length 0 and a Jumbo
    /// Payload option, RFC 2675) do not exist on Ethernet: a payload length
    /// of 0 is an empty payload.
    Ipv6Packet,
    quoted
}

pub const HEADER_LEN: usize = 40;
/// The smallest MTU of an IPv6 link (RFC 8200 §5): an ICMPv6 error quotes
/// as much of the invoking packet as fits in it (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;

/// Next header values of the extension headers the walk skips, and the two
/// it stops at without an upper-layer header to read (ESP, which encrypts
/// what follows, and No Next Header): IP protocol numbers, in `ip_proto`
/// with the rest.
pub mod next_header {
    pub use crate::wire::ip_proto::{AUTH, DEST_OPTS, ESP, FRAGMENT, HOP_BY_HOP, NONE, ROUTING};
}

fields!(Ipv6Packet {
    /// The version, traffic class and flow label, in one word.
    0: ver_tc_flow / set_ver_tc_flow: u32;
    /// The bytes after the fixed header, extension headers included.
    4: payload_len / set_payload_len: len;
    // The first extension header's type (or the upper layer's, if none).
    6: next_header / set_next_header: u8, hop_limit / set_hop_limit: u8;
});

end_fields!(Ipv6Packet: ipv6 {
    src_addr / set_src_addr @ 8,
    dst_addr / set_dst_addr @ 24,
    /// Replaces the address at `end`; returns the old one. No header
    /// checksum changes: the caller patches the transport checksum, whose
    /// pseudo-header covers the address (`checksum::update128`).
    pub replace_addr,
});

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The fixed header inside the buffer, version 6.
    fn check_header(&self) -> Result<()> {
        need(self.b(), HEADER_LEN)?;
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The fixed header and the whole payload inside the buffer (which may
    /// carry link-layer padding past the packet).
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        need(self.b(), HEADER_LEN + self.payload_len())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// DSCP and ECN, as IPv4's TOS.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    pub fn header(&self) -> &[u8] {
        &self.b()[..HEADER_LEN]
    }

    /// Extension headers and upper layer, without any link-layer padding.
    /// For a quoted packet, what of it the buffer holds.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, HEADER_LEN + self.payload_len())
    }

    /// Walks the extension headers to the upper layer (see [`UpperLayer`]).
    /// It reads nothing past the payload and skips at least 8 bytes a
    /// header, so it ends; for a quoted packet a chain cut short by the
    /// quote is `Truncated`.
    pub fn upper_layer(&self) -> std::result::Result<UpperLayer, ExtHeaderError> {
        ext::walk(self.next_header(), self.payload())
    }

    /// The upper-layer bytes `upper` (this packet's walk) points at: the
    /// transport header and its payload, or a later fragment's data.
    pub fn upper_payload(&self, upper: &UpperLayer) -> &[u8] {
        clamp(self.b(), upper.offset, HEADER_LEN + self.payload_len())
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// `payload`, borrowed for as long as the bytes are.
    pub fn into_payload(self) -> &'a [u8] {
        let end = HEADER_LEN + self.payload_len();
        clamp(self.buffer, HEADER_LEN, end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Decrements the hop limit, as a router does to a forwarded packet
    /// (IPv6 has no header checksum to patch).
    pub fn decrement_hop_limit(&mut self) {
        self.set_hop_limit(self.hop_limit().wrapping_sub(1));
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// `upper_payload`, mutable (NAT66 rewrites ports there).
    pub fn upper_payload_mut(&mut self, upper: &UpperLayer) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        clamp_mut(self.buffer.as_mut(), upper.offset, end)
    }
}

/// The fields of an extension-header-less IPv6 header the director emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits; emit drops any above them.
    pub flow_label: u32,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf[..40]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < HEADER_LEN || self.payload_len > usize::from(u16::MAX) {
            return Err(Error::Truncated);
        }
        let word = 6 << 28 | u32::from(self.traffic_class) << 20 | (self.flow_label & 0xf_ffff);
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_ver_tc_flow(word);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Ok(())
    }
}

/// Test support, for the unit tests and the fuzz targets: an IPv6 packet
/// from `src` to `dst` whose first header is `first`, hop limit 64,
/// carrying `payload`, its length field saying `payload_len` (which must
/// fit in 16 bits).
pub fn test_packet(
    (src, dst): (Ipv6Addr, Ipv6Addr),
    first: u8,
    payload: &[u8],
    payload_len: usize,
) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN];
    let repr = Ipv6Repr {
        src,
        dst,
        next_header: first,
        payload_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut b).expect("a payload length of 16 bits");
    b.extend_from_slice(payload);
    b
}

mod ext;

pub use ext::{ExtHeaderError, FragInfo, MAX_EXT_HEADERS, UpperLayer};

#[cfg(test)]
mod tests {
    use super::next_header::*;
    use super::*;
    use crate::wire::{End, ip_proto};

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xb);

    fn repr(next_header: u8, payload_len: usize) -> Ipv6Repr {
        Ipv6Repr {
            src: A,
            dst: B,
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0xa4dea,
        }
    }

    /// A packet whose first header is `first`, carrying `payload`.
    fn packet(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        repr(first, payload.len()).emit(&mut b).unwrap();
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn emit_parse_round_trip() {
        let b = packet(ip_proto::UDP, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), repr(ip_proto::UDP, 8));
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0xa4dea)
        );
        assert_eq!(&b[..4], &[0x6b, 0x8a, 0x4d, 0xea]);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut small = [0u8; 39];
        assert_eq!(repr(6, 0).emit(&mut small), Err(Error::Truncated));
        let mut b = [0u8; 40];
        assert_eq!(repr(6, 65536).emit(&mut b), Err(Error::Truncated));
    }

    #[test]
    fn exactly_the_fixed_header_is_an_empty_packet() {
        let b = packet(NONE, &[]);
        assert_eq!(b.len(), 40);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.payload_len(), p.payload().len()), (0, 0));
        let u = p.upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset, u.frag), (NONE, 40, None));
        assert!(p.upper_payload(&u).is_empty());
        // An extension header announced in an empty payload is cut short.
        let b = packet(DEST_OPTS, &[]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer(), Err(ExtHeaderError::Truncated));
    }

    #[test]
    fn rejects_bad_headers() {
        let mut b = packet(ip_proto::TCP, &[0; 4]);
        let checked = |b: &[u8]| Ipv6Packet::new_checked(b).err();
        let quoted = |b: &[u8]| Ipv6Packet::new_quoted(b).err();
        for (got, cut) in [
            (checked(&b[..39]), 39),
            (checked(&b[..43]), 43),
            (quoted(&b[..39]), 39),
        ] {
            assert_eq!(got, Some(Error::Truncated), "{cut} bytes");
        }
        b[0] = 0x45;
        assert_eq!(checked(&b), Some(Error::Malformed));
        assert_eq!(quoted(&b), Some(Error::Malformed));
    }

    #[test]
    fn padding_is_not_payload_and_a_quote_may_be_short() {
        let mut b = packet(ip_proto::UDP, &[9; 8]);
        b.extend_from_slice(&[0xee; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[9; 8]);
        let q = Ipv6Packet::new_quoted(&b[..44]).unwrap();
        assert_eq!((q.payload_len(), q.payload()), (8, &[9u8; 4][..]));
        assert_eq!(q.into_payload().len(), 4);
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut b = packet(ip_proto::UDP, &[0; 8]);
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 63);
        p.set_hop_limit(1);
        p.set_next_header(ip_proto::TCP);
        p.set_payload_len(4);
        p.set_src_addr(B);
        assert_eq!(p.replace_addr(End::Dst, A), B);
        assert_eq!(p.replace_addr(End::Src, A), B);
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.hop_limit(), p.next_header(), p.payload_len()), (1, 6, 4));
        assert_eq!((p.src_addr(), p.dst_addr()), (A, A));
        assert_eq!((p.traffic_class(), p.flow_label()), (0xb8, 0xa4dea));
        assert_eq!(&b[40..44], &[1, 2, 3, 4]);
    }
}
