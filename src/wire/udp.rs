//! UDP headers (RFC 768).

use super::checksum;
use super::{Error, Result, clamp, clamp_mut, ip_proto, need_claimed, read_u16, write_u16};
use std::net::{Ipv4Addr, Ipv6Addr};

view! {
    UdpPacket
}

port_fields!(UdpPacket);

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field inside a UDP header.
pub const CHECKSUM_OFFSET: usize = 6;

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// The header is present and the length field fits the buffer.
    pub fn check_len(&self) -> Result<()> {
        need_claimed(self.buffer.as_ref(), HEADER_LEN, |b| {
            usize::from(read_u16(b, 4))
        })
    }

    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), 4))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
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
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, b.len() as u32);
        self.checksum() != 0 && checksum::fold(ph + checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), 4, len);
    }

    pub fn set_checksum(&mut self, c: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM_OFFSET, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram
    /// (as long as its length field says).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let len = self.len();
        let b = clamp_mut(self.buffer.as_mut(), 0, len);
        write_u16(b, CHECKSUM_OFFSET, 0);
        let ph = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, b.len() as u32);
        write_u16(
            b,
            CHECKSUM_OFFSET,
            nonzero(checksum::finish(ph + checksum::sum(b))),
        );
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
    /// over the IPv4 pseudo-header of `src` and `dst`; returns its length.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> Result<usize> {
        self.emit_with(buf, payload, |n| {
            checksum::pseudo_header(src, dst, ip_proto::UDP, n)
        })
    }

    /// As [`UdpRepr::emit`], over the IPv6 pseudo-header.
    pub fn emit_v6(
        &self,
        buf: &mut [u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        payload: &[u8],
    ) -> Result<usize> {
        self.emit_with(buf, payload, |n| {
            checksum::pseudo_header_v6(src, dst, ip_proto::UDP, n)
        })
    }

    /// `pseudo` is the pseudo-header's sum for a datagram of that length.
    fn emit_with(
        &self,
        buf: &mut [u8],
        payload: &[u8],
        pseudo: impl Fn(u32) -> u64,
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
        let b = p.buffer;
        let sum = pseudo(n as u32) + checksum::sum(b);
        write_u16(b, CHECKSUM_OFFSET, nonzero(checksum::finish(sum)));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let n = r.emit_v6(&mut b, src, dst, b"probe").unwrap();
        // etherparse's own datagram is the same bytes.
        let mut want = Vec::new();
        etherparse::PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
            .udp(4000, 4001)
            .write(&mut want, b"probe")
            .unwrap();
        assert_eq!(&b[..n], &want[40..]);
        let mut p = UdpPacket::new_checked(&mut b[..n]).unwrap();
        assert!(p.verify_checksum_v6(src, dst));
        assert!(!p.verify_checksum_v6(dst, dst));
        let c = p.checksum();
        p.set_checksum(0);
        assert!(!p.verify_checksum_v6(src, dst));
        p.fill_checksum_v6(src, dst);
        assert_eq!(p.checksum(), c);
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
