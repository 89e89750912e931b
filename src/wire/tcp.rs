//! TCP headers (RFC 9293): the fields the director reads for connection
//! tracking, and the ones segmentation rewrites.

use super::checksum;
use super::{Result, ip_proto, need_claimed, read_u16, read_u32, write_u16, write_u32};
use std::net::Ipv6Addr;

view! {
    TcpPacket
}

port_fields!(TcpPacket);

pub const HEADER_LEN: usize = 20;

/// TCP flag bits in the 13th header byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const CWR: u8 = 0x80;
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The fixed header and the options the data offset claims are present.
    pub fn check_len(&self) -> Result<()> {
        need_claimed(self.buffer.as_ref(), HEADER_LEN, |b| {
            usize::from(b[12] >> 4) * 4
        })
    }

    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }

    /// The checksum over the IPv6 pseudo-header and the segment: the whole
    /// buffer, which must be the segment (the upper-layer bytes of an
    /// unfragmented packet).
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, b.len() as u32);
        checksum::fold(ph + checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), 4, v);
    }

    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[13] = f;
    }

    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, c);
    }

    /// Computes the checksum over the IPv6 pseudo-header and the segment
    /// (the whole buffer, as for `verify_checksum_v6`).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        write_u16(b, CHECKSUM_OFFSET, 0);
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, b.len() as u32);
        write_u16(b, CHECKSUM_OFFSET, checksum::finish(ph + checksum::sum(b)));
    }
}

/// Offset of the checksum field inside a TCP header.
pub const CHECKSUM_OFFSET: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn data_offset_is_validated() {
        let mut h = [0u8; 24];
        h[12] = 6 << 4; // 24 bytes of header
        assert!(TcpPacket::new_checked(&h[..]).is_ok());
        assert_eq!(
            TcpPacket::new_checked(&h[..23]).err(),
            Some(Error::Truncated)
        );
        h[12] = 4 << 4;
        assert_eq!(TcpPacket::new_checked(&h[..]).err(), Some(Error::Malformed));
        assert_eq!(
            TcpPacket::new_checked(&h[..10]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn ipv6_checksum_is_etherparses() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("2001:2::b".parse().unwrap(), "2001:2::a".parse().unwrap());
        let mut b = Vec::new();
        etherparse::PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
            .tcp(40000, 80, 7, 64000)
            .syn()
            .write(&mut b, b"hello")
            .unwrap();
        let mut t = TcpPacket::new_checked(&mut b[40..]).unwrap();
        assert!(t.verify_checksum_v6(src, dst));
        assert!(!t.verify_checksum_v6(src, src));
        let c = t.checksum();
        t.set_checksum(0);
        assert!(!t.verify_checksum_v6(src, dst));
        t.fill_checksum_v6(src, dst);
        assert_eq!(t.checksum(), c);
    }
}
