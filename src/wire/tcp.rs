//! TCP headers (RFC 9293): the fields the director reads for connection
//! tracking, and the ones segmentation rewrites.

use super::checksum;
use super::{Error, Result, ip_proto, need_claimed};
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
    4: seq_number / set_seq_number: u32, ack_number / set_ack_number: u32;
    // The data offset: the header's length in 4-byte words, high nibble.
    12: data_offset / set_data_offset: u8, flags / set_flags: u8, window / set_window: u16;
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

/// A TCP header without options or payload, as the director builds one
/// (the via-VIP check's SYN and RST) and reads one (the answer to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// `flags::*` bits.
    pub flags: u8,
    pub window: u16,
}

impl TcpRepr {
    /// The header's fields; its options and payload are ignored.
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> TcpRepr {
        TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window(),
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }

    /// Writes the 20-byte header into `buf` with its checksum over the
    /// pseudo-header of `src` and `dst` (IPv4 or IPv6); returns its length.
    pub fn emit<A: checksum::PseudoHeader>(&self, buf: &mut [u8], src: A, dst: A) -> Result<usize> {
        let b = buf.get_mut(..HEADER_LEN).ok_or(Error::Truncated)?;
        b.fill(0);
        let mut p = TcpPacket::new_unchecked(b);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_data_offset((HEADER_LEN as u8 / 4) << 4);
        p.set_flags(self.flags);
        p.set_window(self.window);
        let len = HEADER_LEN as u32;
        let sum = A::pseudo_header(src, dst, ip_proto::TCP, len) + checksum::sum(p.buffer);
        p.set_checksum(checksum::finish(sum));
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A SYN emitted, read back by etherparse (an independent oracle) and
    /// by our own view; every cut of it is refused, never a panic.
    #[test]
    fn emit_parse_round_trip_checked_by_etherparse() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 100));
        let r = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: 0x0102_0304,
            ack: 0,
            flags: flags::SYN,
            window: 1024,
        };
        let mut b = [0u8; 24];
        assert_eq!(r.emit(&mut b, src, dst), Ok(HEADER_LEN));
        let p = TcpPacket::new_checked(&b[..HEADER_LEN]).unwrap();
        assert_eq!(TcpRepr::parse(&p), r);
        assert!(p.syn() && !p.ack() && !p.rst());
        let h = etherparse::TcpHeader::from_slice(&b[..HEADER_LEN])
            .unwrap()
            .0;
        assert_eq!((h.source_port, h.destination_port), (40000, 80));
        assert_eq!(
            (h.sequence_number, h.syn, h.ack),
            (0x0102_0304, true, false)
        );
        assert_eq!(
            h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), &[]),
            Ok(h.checksum)
        );
        for cut in 0..HEADER_LEN {
            assert!(TcpPacket::new_checked(&b[..cut]).is_err());
        }
        assert_eq!(r.emit(&mut b[..19], src, dst), Err(Error::Truncated));
    }

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
