//! IPv4 headers (RFC 791).

use super::checksum;
use super::{End, Error, Result, clamp, clamp_mut, read_u16, read_u32, write_u16, write_u32};
use std::net::Ipv4Addr;

view! {
    /// A view over an IPv4 packet. `new_checked` guarantees that the header
    /// (with options) and the whole `total_len` lie inside the buffer, so the
    /// buffer may carry link-layer padding past the packet.
    Ipv4Packet
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

pub const HEADER_LEN: usize = 20;
/// Don't fragment and more fragments, in the flags-and-offset word.
pub const DF: u16 = 0x4000;
pub const MF: u16 = 0x2000;
/// The fragment offset (in 8-byte units) in the flags-and-offset word.
pub const OFFSET_MASK: u16 = 0x1fff;

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view over a packet quoted in an ICMP error: the header (options
    /// included) must be complete, the payload may be cut short. `payload`
    /// then ends where the buffer does.
    pub fn new_quoted(buffer: T) -> Result<Self> {
        let p = Ipv4Packet::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    /// Version 4 and a header length of at least 20 bytes.
    fn check_fields(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The header (options included) inside the buffer.
    fn check_header(&self) -> Result<()> {
        self.check_fields()?;
        if self.buffer.as_ref().len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The header and the whole `total_len` inside the buffer (which may
    /// carry link-layer padding past the packet).
    pub fn check_len(&self) -> Result<()> {
        self.check_fields()?;
        let total = self.total_len();
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        if self.buffer.as_ref().len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }

    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.b(), field::LENGTH))
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.b(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & DF != 0
    }

    /// True for any fragment: more-fragments set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & (MF | OFFSET_MASK) != 0
    }

    /// The fragment offset in 8-byte units: 0 for a whole packet or a
    /// first fragment, the only one with ports.
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.b(), field::FLG_OFF) & OFFSET_MASK
    }

    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.b(), field::SRC))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.b(), field::DST))
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.b()[..self.header_len()])) == 0xffff
    }

    /// The transport payload, without any link-layer padding.
    /// For a quoted packet, what of it the buffer holds.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), self.total_len())
    }

    /// The raw flags-and-fragment-offset word.
    pub fn frag_word(&self) -> u16 {
        read_u16(self.b(), field::FLG_OFF)
    }

    /// The header including options.
    pub fn header(&self) -> &[u8] {
        &self.b()[..self.header_len()]
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// `payload`, borrowed for as long as the bytes are.
    pub fn into_payload(self) -> &'a [u8] {
        let (hl, end) = (self.header_len(), self.total_len());
        clamp(self.buffer, hl, end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Decrements the TTL and patches the header checksum incrementally,
    /// which is what a router (and IPVS) does to a forwarded packet.
    pub fn decrement_ttl(&mut self) {
        let b = self.bm();
        let old = read_u16(b, field::TTL);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let new = read_u16(b, field::TTL);
        let c = checksum::update16(read_u16(b, field::CHECKSUM), old, new);
        write_u16(b, field::CHECKSUM, c);
    }

    /// Replaces the address at `end` and patches the header checksum
    /// incrementally (RFC 1624); returns the old address.
    pub fn replace_addr(&mut self, end: End, a: Ipv4Addr) -> Ipv4Addr {
        let at = match end {
            End::Src => field::SRC,
            End::Dst => field::DST,
        };
        let old = read_u32(self.b(), at);
        write_u32(self.bm(), at, u32::from(a));
        let c = checksum::update32(self.checksum(), old, u32::from(a));
        self.set_checksum(c);
        Ipv4Addr::from(old)
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        write_u32(self.bm(), field::SRC, u32::from(a));
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        write_u32(self.bm(), field::DST, u32::from(a));
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[field::TTL] = ttl;
    }

    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.bm(), field::CHECKSUM, c);
    }

    /// Sets the flags-and-fragment-offset word (DF, MF, offset / 8).
    pub fn set_frag_word(&mut self, w: u16) {
        write_u16(self.bm(), field::FLG_OFF, w);
    }

    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.bm(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        write_u16(self.bm(), field::IDENT, id);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.bm();
        write_u16(b, field::CHECKSUM, 0);
        let c = checksum::finish(checksum::sum(&b[..hl]));
        write_u16(b, field::CHECKSUM, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        clamp_mut(self.bm(), hl, tl)
    }
}

/// The fields of a plain (option-less) IPv4 header the director emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header, checksum included, into `buf[..20]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = HEADER_LEN + self.payload_len;
        if buf.len() < HEADER_LEN || total > usize::from(u16::MAX) {
            return Err(Error::Truncated);
        }
        buf[field::VER_IHL] = 0x45;
        buf[field::TOS] = self.tos;
        write_u16(buf, field::LENGTH, total as u16);
        write_u16(buf, field::IDENT, self.ident);
        write_u16(buf, field::FLG_OFF, if self.dont_frag { DF } else { 0 });
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol;
        buf[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        buf[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        write_u16(buf, field::CHECKSUM, 0);
        let c = checksum::finish(checksum::sum(&buf[..HEADER_LEN]));
        write_u16(buf, field::CHECKSUM, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 10),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            protocol: 17,
            payload_len: 4,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut b = vec![0u8; 24];
        repr.emit(&mut b).unwrap();
        b
    }

    #[test]
    fn emit_parse_round_trip() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ttl(), 64);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 100));
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
    }

    #[test]
    fn replacing_an_address_keeps_the_checksum_valid() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        let old = p.replace_addr(End::Dst, Ipv4Addr::new(198, 18, 1, 11));
        assert_eq!(old, Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 1, 11));
        assert!(p.verify_checksum());
        p.replace_addr(End::Src, Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(p.src_addr(), Ipv4Addr::new(203, 0, 113, 7));
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_bad_headers() {
        let mut b = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..23]).err(),
            Some(Error::Truncated)
        );
        b[0] = 0x44; // ihl 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        b[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
        b[0] = 0x4f; // ihl 15 = 60 bytes > total 24
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn padding_is_not_payload() {
        let mut b = sample();
        b.extend_from_slice(&[0xee; 20]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }
}
