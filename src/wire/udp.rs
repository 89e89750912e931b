//! UDP headers (RFC 768).

use super::checksum;
use super::{Error, Result, clamp, clamp_mut, ip_proto, need_claimed, read_u16, write_u16};
use std::net::Ipv4Addr;

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
        let sum = checksum::pseudo_header(src, dst, ip_proto::UDP, n as u32) + checksum::sum(b);
        // A computed zero is sent as all ones: zero means "no checksum".
        let c = match checksum::finish(sum) {
            0 => 0xffff,
            c => c,
        };
        write_u16(b, CHECKSUM_OFFSET, c);
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
}
