//! ARP for IPv4 over Ethernet (RFC 826): the director answers for its VIPs.

use super::{Error, MacAddr, Result};
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

fields!(ArpPacket {
    0: hardware_type / set_hardware_type: u16, protocol_type / set_protocol_type: u16;
    4: hardware_len / set_hardware_len: u8, protocol_len / set_protocol_len: u8;
    6: operation / set_operation: u16;
    8: sender_hw / set_sender_hw: mac, sender_ip / set_sender_ip: ipv4;
    18: target_hw / set_target_hw: mac, target_ip / set_target_ip: ipv4;
});

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
        let mut p = ArpPacket::new_checked(buf)?;
        p.set_hardware_type(1);
        p.set_protocol_type(0x0800);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(match self.operation {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        });
        p.set_sender_hw(self.sender_hw);
        p.set_sender_ip(self.sender_ip);
        p.set_target_hw(self.target_hw);
        p.set_target_ip(self.target_ip);
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
