//! TCP headers (RFC 9293): the fields the director reads for connection
//! tracking, and the ones segmentation rewrites.

use super::checksum;
use super::{Result, ip_proto, need_claimed};
use std::net::Ipv6Addr;

view! {
    TcpPacket
}

port_fields!(TcpPacket);

pub const HEADER_LEN: usize = 20;

/// The flag bits, `flags::X`, and a test for each one the director reads
/// (`syn()` and so on).
macro_rules! tcp_flags {
    ($($bit:ident = $value:literal $(=> $test:ident)?,)*) => {
        /// TCP flag bits in the 13th header byte.
        pub mod flags {
            $(pub const $bit: u8 = $value;)*
        }

        impl<T: AsRef<[u8]>> TcpPacket<T> {
            $($(
                pub fn $test(&self) -> bool {
                    self.flags() & flags::$bit != 0
                }
            )?)*
        }
    };
}

tcp_flags! {
    FIN = 0x01 => fin,
    SYN = 0x02 => syn,
    RST = 0x04 => rst,
    PSH = 0x08,
    ACK = 0x10 => ack,
    CWR = 0x80,
}

fields!(TcpPacket {
    4: seq_number / set_seq_number: u32;
    // The data offset: the header's length in 4-byte words, high nibble.
    12: data_offset: u8, flags / set_flags: u8;
    16: checksum / set_checksum: u16;
});

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The fixed header and the options the data offset claims are present.
    pub fn check_len(&self) -> Result<()> {
        need_claimed(self.buffer.as_ref(), HEADER_LEN, |_| self.header_len())
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset() >> 4) * 4
    }

    /// The checksum over the IPv6 pseudo-header and the segment: the whole
    /// buffer, which must be the segment (the upper-layer bytes of an
    /// unfragmented packet).
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::verify_v6(src, dst, ip_proto::TCP, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Computes the checksum over the IPv6 pseudo-header and the segment
    /// (the whole buffer, as for `verify_checksum_v6`).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::compute_v6(src, dst, ip_proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
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
        check_v6_checksum!(t, (src, dst), (src, src));
    }
}
