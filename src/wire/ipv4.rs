//! IPv4 headers (RFC 791).

use super::checksum;
use super::{End, Error, Result, clamp, clamp_mut, need};
use std::net::Ipv4Addr;

view! {
    /// A view over an IPv4 packet. `new_checked` guarantees that the header
    /// (with options) and the whole `total_len` lie inside the buffer, so the
    /// buffer may carry link-layer padding past the packet.
    Ipv4Packet,
    quoted
}

pub const HEADER_LEN: usize = 20;
/// Don't fragment and more fragments, in the flags-and-offset word.
pub const DF: u16 = 0x4000;
pub const MF: u16 = 0x2000;
/// The fragment offset (in 8-byte units) in the flags-and-offset word.
pub const OFFSET_MASK: u16 = 0x1fff;

fields!(Ipv4Packet {
    // Version and header length (in 4-byte words), TOS, total length.
    0: ver_ihl / set_ver_ihl: u8, tos / set_tos: u8, total_len / set_total_len: len;
    // The flags-and-fragment-offset word: DF, MF, offset / 8.
    4: ident / set_ident: u16, frag_word / set_frag_word: u16;
    8: ttl / set_ttl: u8, protocol / set_protocol: u8, checksum / set_checksum: u16;
});

end_fields!(Ipv4Packet: ipv4 {
    src_addr / set_src_addr @ 12,
    dst_addr / set_dst_addr @ 16,
    /// `replace_addr` without the checksum.
    swap_addr,
});

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Version 4 and a header length of at least 20 bytes.
    fn check_fields(&self) -> Result<()> {
        need(self.b(), HEADER_LEN)?;
        if self.ver_ihl() >> 4 != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The header (options included) inside the buffer.
    fn check_header(&self) -> Result<()> {
        self.check_fields()?;
        need(self.b(), self.header_len())
    }

    /// The header and the whole `total_len` inside the buffer (which may
    /// carry link-layer padding past the packet).
    pub fn check_len(&self) -> Result<()> {
        self.check_fields()?;
        let total = self.total_len();
        if total < self.header_len() {
            return Err(Error::Malformed);
        }
        need(self.b(), total)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.ver_ihl() & 0x0f) * 4
    }

    pub fn dont_frag(&self) -> bool {
        self.frag_word() & DF != 0
    }

    /// True for any fragment: more-fragments set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.frag_word() & (MF | OFFSET_MASK) != 0
    }

    /// The fragment offset in 8-byte units: 0 for a whole packet or a
    /// first fragment, the only one with ports.
    pub fn frag_offset(&self) -> u16 {
        self.frag_word() & OFFSET_MASK
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xffff
    }

    /// The transport payload, without any link-layer padding.
    /// For a quoted packet, what of it the buffer holds.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), self.total_len())
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
    /// Decrements the TTL and patches the header checksum incrementally,
    /// which is what a router (and IPVS) does to a forwarded packet.
    pub fn decrement_ttl(&mut self) {
        // The TTL is the high byte of the word it shares with the protocol.
        let old = u16::from_be_bytes([self.ttl(), self.protocol()]);
        self.set_ttl(self.ttl().wrapping_sub(1));
        let new = u16::from_be_bytes([self.ttl(), self.protocol()]);
        self.set_checksum(checksum::update16(self.checksum(), old, new));
    }

    /// Replaces the address at `end` and patches the header checksum
    /// incrementally (RFC 1624); returns the old address.
    pub fn replace_addr(&mut self, end: End, a: Ipv4Addr) -> Ipv4Addr {
        let old = self.swap_addr(end, a);
        let c = checksum::update32(self.checksum(), u32::from(old), u32::from(a));
        self.set_checksum(c);
        old
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.header()));
        self.set_checksum(c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        clamp_mut(self.buffer.as_mut(), hl, tl)
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
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_ver_ihl(0x45);
        p.set_tos(self.tos);
        p.set_total_len(total as u16);
        p.set_ident(self.ident);
        p.set_frag_word(if self.dont_frag { DF } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
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
        let b = sample();
        for cut in [19, 23] {
            let got = Ipv4Packet::new_checked(&b[..cut]).err();
            assert_eq!(got, Some(Error::Truncated), "{cut} bytes");
        }
        // ihl 4; version 6; ihl 15 = 60 bytes > total 24.
        for first in [0x44, 0x65, 0x4f] {
            let mut b = b.clone();
            b[0] = first;
            let got = Ipv4Packet::new_checked(&b[..]).err();
            assert_eq!(got, Some(Error::Malformed), "first byte {first:#x}");
        }
    }

    #[test]
    fn padding_is_not_payload() {
        let mut b = sample();
        b.extend_from_slice(&[0xee; 20]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }
}
