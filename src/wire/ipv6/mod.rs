//! IPv6 headers (RFC 8200); the walk over their extension headers to the
//! upper-layer header is `ext`.

use super::{End, Error, Result, clamp, clamp_mut, read_u16, read_u32, write_u16, write_u32};
use std::net::Ipv6Addr;

view! {
    /// A view over an IPv6 packet. `new_checked` guarantees that the fixed
    /// header and the `payload_len` bytes after it lie inside the buffer;
    /// bytes past them are link-layer padding, not part of the packet, and
    /// `payload` leaves them out. Jumbograms (payload length 0 and a Jumbo
    /// Payload option, RFC 2675) do not exist on Ethernet: a payload length
    /// of 0 is an empty payload.
    Ipv6Packet
}

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

pub const HEADER_LEN: usize = 40;
/// The smallest MTU of an IPv6 link (RFC 8200 §5): an ICMPv6 error quotes
/// as much of the invoking packet as fits in it (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;

/// Next header values of the extension headers the walk skips, and the two
/// it stops at without an upper-layer header to read.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    /// Encrypts what follows: as far as the walk goes, an upper layer.
    pub const ESP: u8 = 50;
    pub const AUTH: u8 = 51;
    pub const NONE: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// The address at `at` (16 bytes the caller has checked are there).
pub(crate) fn read_addr(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

pub(crate) fn write_addr(b: &mut [u8], at: usize, a: Ipv6Addr) {
    b[at..at + 16].copy_from_slice(&a.octets());
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view over a packet quoted in an ICMPv6 error: the fixed header
    /// must be complete, the payload may be cut short (errors quote at most
    /// what fits in 1280 bytes). `payload` then ends where the buffer does.
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let p = Ipv6Packet::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// The fixed header inside the buffer, version 6.
    fn check_header(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The fixed header and the whole payload inside the buffer (which may
    /// carry link-layer padding past the packet).
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        if self.buffer.as_ref().len() < HEADER_LEN + self.payload_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VER_TC_FLOW] >> 4
    }

    /// DSCP and ECN, as IPv4's TOS.
    pub fn traffic_class(&self) -> u8 {
        (read_u16(self.b(), field::VER_TC_FLOW) >> 4) as u8
    }

    pub fn flow_label(&self) -> u32 {
        read_u32(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// The bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.b(), field::LENGTH))
    }

    /// The first extension header's type, or the upper layer's if none.
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        read_addr(self.b(), field::SRC)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        read_addr(self.b(), field::DST)
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
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Decrements the hop limit, as a router does to a forwarded packet
    /// (IPv6 has no header checksum to patch).
    pub fn decrement_hop_limit(&mut self) {
        let b = self.bm();
        b[field::HOP_LIMIT] = b[field::HOP_LIMIT].wrapping_sub(1);
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        self.bm()[field::HOP_LIMIT] = h;
    }

    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        write_addr(self.bm(), field::SRC, a);
    }

    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        write_addr(self.bm(), field::DST, a);
    }

    /// Replaces the address at `end`; returns the old one. No header
    /// checksum changes: the caller patches the transport checksum, whose
    /// pseudo-header covers the address (`checksum::update128`).
    pub fn replace_addr(&mut self, end: End, a: Ipv6Addr) -> Ipv6Addr {
        let at = match end {
            End::Src => field::SRC,
            End::Dst => field::DST,
        };
        let old = read_addr(self.b(), at);
        write_addr(self.bm(), at, a);
        old
    }

    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.bm(), field::LENGTH, len);
    }

    pub fn set_next_header(&mut self, nh: u8) {
        self.bm()[field::NEXT_HEADER] = nh;
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        clamp_mut(self.bm(), HEADER_LEN, end)
    }

    /// `upper_payload`, mutable (NAT66 rewrites ports there).
    pub fn upper_payload_mut(&mut self, upper: &UpperLayer) -> &mut [u8] {
        let end = HEADER_LEN + self.payload_len();
        clamp_mut(self.bm(), upper.offset, end)
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
        write_u32(buf, field::VER_TC_FLOW, word);
        write_u16(buf, field::LENGTH, self.payload_len as u16);
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HOP_LIMIT] = self.hop_limit;
        write_addr(buf, field::SRC, self.src);
        write_addr(buf, field::DST, self.dst);
        Ok(())
    }
}

mod ext;

pub use ext::{ExtHeaderError, FragInfo, MAX_EXT_HEADERS, UpperLayer};

#[cfg(test)]
mod tests {
    use super::next_header::*;
    use super::*;
    use crate::wire::ip_proto;

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
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..43]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv6Packet::new_quoted(&b[..39]).err(),
            Some(Error::Truncated)
        );
        b[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        assert_eq!(Ipv6Packet::new_quoted(&b[..]).err(), Some(Error::Malformed));
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
