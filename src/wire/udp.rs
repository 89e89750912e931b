//! UDP headers (RFC 768).

use super::checksum;
use super::{Error, Result, clamp, clamp_mut, ip_proto, need_claimed};
use std::net::Ipv6Addr;

view! {
    UdpPacket
}

port_fields!(UdpPacket);

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field inside a UDP header.
pub const CHECKSUM_OFFSET: usize = 6;

fields!(UdpPacket {
    // The datagram's length, header included, and its checksum.
    4: len / set_len: len, checksum / set_checksum: u16;
});

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// The header is present and the length field fits the buffer.
    pub fn check_len(&self) -> Result<()> {
        need_claimed(self.buffer.as_ref(), HEADER_LEN, |_| self.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    /// The datagram's payload, as far as the length field says.
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), HEADER_LEN, self.len())
    }

    /// Over IPv6 the checksum is mandatory (RFC 8200 §8.1): zero, which
    /// says "none" over IPv4, is invalid, and the sum over the IPv6
    /// pseudo-header and the datagram (as long as its length field says)
    /// must check.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = clamp(self.buffer.as_ref(), 0, self.len());
        self.checksum() != 0 && checksum::verify_v6(src, dst, ip_proto::UDP, b)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram
    /// (as long as its length field says).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = clamp(self.buffer.as_ref(), 0, self.len());
        let c = checksum::compute_v6(src, dst, ip_proto::UDP, b);
        self.set_checksum(nonzero(c));
    }
}

/// A computed zero is sent as all ones: zero means "no checksum" (RFC 768,
/// and RFC 8200 §8.1 for IPv6, where it is not allowed at all).
fn nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}

/// A UDP header as the director builds it (the probe's datagrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> UdpRepr {
        UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        }
    }

    /// Header plus `payload`.
    pub fn buffer_len(&self, payload: &[u8]) -> usize {
        HEADER_LEN + payload.len()
    }

    /// Writes the datagram carrying `payload` into `buf` with its checksum
    /// over the pseudo-header of `src` and `dst`, IPv4 or IPv6 addresses;
    /// returns its length.
    pub fn emit<A: checksum::PseudoHeader>(
        &self,
        buf: &mut [u8],
        src: A,
        dst: A,
        payload: &[u8],
    ) -> Result<usize> {
        let n = self.buffer_len(payload);
        if buf.len() < n || n > usize::from(u16::MAX) {
            return Err(Error::Truncated);
        }
        let mut p = UdpPacket::new_unchecked(&mut buf[..n]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(n as u16);
        p.set_checksum(0);
        p.payload_mut().copy_from_slice(payload);
        let sum = A::pseudo_header(src, dst, ip_proto::UDP, n as u32) + checksum::sum(p.buffer);
        p.set_checksum(nonzero(checksum::finish(sum)));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::read_u16;
    use std::net::Ipv4Addr;

    #[test]
    fn length_field_is_validated() {
        let mut h = [0u8; 12];
        h[5] = 12;
        assert!(UdpPacket::new_checked(&h[..]).is_ok());
        h[5] = 13;
        assert_eq!(UdpPacket::new_checked(&h[..]).err(), Some(Error::Truncated));
        h[5] = 7;
        assert_eq!(UdpPacket::new_checked(&h[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn emit_parse_round_trip_with_a_valid_checksum() {
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 11));
        let r = UdpRepr {
            src_port: 4000,
            dst_port: 4001,
        };
        let mut b = [0u8; 32];
        let n = r.emit(&mut b, src, dst, b"probe").unwrap();
        assert_eq!(n, 13);
        let p = UdpPacket::new_checked(&b[..n]).unwrap();
        assert_eq!(UdpRepr::parse(&p), r);
        assert_eq!(p.payload(), b"probe");
        let sum = checksum::pseudo_header(src, dst, ip_proto::UDP, 13) + checksum::sum(&b[..n]);
        assert_eq!(checksum::fold(sum), 0xffff);
        assert!(r.emit(&mut b[..12], src, dst, b"probe").is_err());
    }

    #[test]
    fn over_ipv6_the_checksum_is_the_v6_one_and_never_zero() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) =
            ("2001:2::b".parse().unwrap(), "2001:2::a".parse().unwrap());
        let r = UdpRepr {
            src_port: 4000,
            dst_port: 4001,
        };
        let mut b = [0u8; 32];
        let n = r.emit(&mut b, src, dst, b"probe").unwrap();
        // etherparse's own datagram is the same bytes.
        let mut want = Vec::new();
        etherparse::PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
            .udp(4000, 4001)
            .write(&mut want, b"probe")
            .unwrap();
        assert_eq!(&b[..n], &want[40..]);
        let mut p = UdpPacket::new_checked(&mut b[..n]).unwrap();
        let c = check_v6_checksum!(p, (src, dst), (dst, dst));
        // It is sent with all ones, and verifies (IPv4 sends the same;
        // IPv6 refuses a zero).
        // The datagram whose sum comes to zero: its first payload word
        // raised by the checksum brings the sum to all ones.
        let w = checksum::fold(u64::from(read_u16(p.payload(), 0)) + u64::from(c));
        p.payload_mut()[..2].copy_from_slice(&w.to_be_bytes());
        p.fill_checksum_v6(src, dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v6(src, dst));
    }
}
