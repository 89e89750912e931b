//! UDP headers (RFC 768).

use super::{Error, Result, read_u16};

pub struct UdpPacket<T> {
    buffer: T,
}

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field inside a UDP header.
pub const CHECKSUM_OFFSET: usize = 6;

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Checks the header is present and the length field fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(read_u16(b, 4));
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), 4))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
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
}
