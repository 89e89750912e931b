//! ARP for IPv4 over Ethernet (RFC 826): the director answers for its VIPs.

use super::{Error, MacAddr, Result, read_u16, write_u16};
use std::net::Ipv4Addr;

view! {
    ArpPacket,
    len = PACKET_LEN
}

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.b(), 0)
    }

    pub fn protocol_type(&self) -> u16 {
        read_u16(self.b(), 2)
    }

    pub fn hardware_len(&self) -> u8 {
        self.b()[4]
    }

    pub fn protocol_len(&self) -> u8 {
        self.b()[5]
    }

    pub fn operation(&self) -> u16 {
        read_u16(self.b(), 6)
    }

    pub fn sender_hw(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[8..14]).unwrap_or_default()
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }

    pub fn target_hw(&self) -> MacAddr {
        MacAddr::from_slice(&self.b()[18..24]).unwrap_or_default()
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// A parsed Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_hw: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_hw: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Accepts only Ethernet (1) / IPv4 (0x0800) requests and replies.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        if p.hardware_type() != 1
            || p.protocol_type() != 0x0800
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        let operation = match p.operation() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(Error::Malformed),
        };
        Ok(ArpRepr {
            operation,
            sender_hw: p.sender_hw(),
            sender_ip: p.sender_ip(),
            target_hw: p.target_hw(),
            target_ip: p.target_ip(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        write_u16(buf, 0, 1);
        write_u16(buf, 2, 0x0800);
        buf[4] = 6;
        buf[5] = 4;
        let op = match self.operation {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        };
        write_u16(buf, 6, op);
        buf[8..14].copy_from_slice(&self.sender_hw.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_hw.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let r = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(198, 18, 0, 10),
            target_hw: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(198, 18, 0, 100),
        };
        let mut b = [0u8; 28];
        r.emit(&mut b).unwrap();
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()),
            Ok(r)
        );
        assert!(ArpPacket::new_checked(&b[..27]).is_err());
        b[7] = 9; // unknown operation
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()),
            Err(Error::Malformed)
        );
    }
}
