//! Ethernet II frames.

use super::Result;
use std::fmt;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Takes the first six bytes of a slice, as netlink hands them over.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(MacAddr(a))
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address that does not parse: six hex octets, colon-separated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad MAC address '{0}'")]
pub struct BadMacAddr(pub String);

impl std::str::FromStr for MacAddr {
    type Err = BadMacAddr;
    fn from_str(s: &str) -> std::result::Result<Self, BadMacAddr> {
        let bad = || BadMacAddr(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// EtherType values the director handles.
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
}

/// Destination, source and EtherType.
pub const HEADER_LEN: usize = 14;

view! {
    /// A view over an Ethernet II frame.
    EthernetFrame,
    len = HEADER_LEN
}

fields!(EthernetFrame {
    0: dst_addr / set_dst_addr: mac, src_addr / set_src_addr: mac;
    12: ethertype / set_ethertype: u16;
});

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// Writes an Ethernet header at the start of `buf` (at least 14 bytes).
pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    let mut f = EthernetFrame::new_unchecked(buf);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethertype);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn short_frame_is_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn mac_round_trip() {
        let m: MacAddr = "02:00:c6:12:00:0b".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:c6:12:00:0b");
        assert!("02:00".parse::<MacAddr>().is_err());
        assert!("02:00:c6:12:00:0b:01".parse::<MacAddr>().is_err());
        assert!("zz:00:c6:12:00:0b".parse::<MacAddr>().is_err());
    }
}
