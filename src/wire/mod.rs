//! Checked views over packet bytes, in the style of smoltcp's `wire` module.
//!
//! Every view is created with `new_checked`, which validates the lengths the
//! accessors rely on; after that no accessor can panic, whatever the bytes
//! say. Rewrites happen in place through the `set_*` methods, so forwarding
//! never copies or allocates. `*Repr` values are the small parsed forms used
//! to build frames the director originates (ARP replies, ICMP errors).

/// Defines a view over a byte buffer with the constructors every view
/// has: `new_unchecked`, `new_checked` (the view's own `check_len` first)
/// and `into_inner`.
macro_rules! view {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name<T> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// A view without any check, for bytes already checked (the
            /// data plane classifies a frame once and hands the checked
            /// bounds on). As in smoltcp, accessors may panic on bytes
            /// that `check_len` refuses.
            pub fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// `new_unchecked` followed by `check_len`: after it no
            /// accessor can panic, whatever the bytes say.
            pub fn new_checked(buffer: T) -> Result<Self> {
                let v = Self::new_unchecked(buffer);
                v.check_len()?;
                Ok(v)
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
    // A view of a fixed size: `check_len` asks for `$len` bytes.
    ($(#[$meta:meta])* $name:ident, len = $len:expr) => {
        view! { $(#[$meta])* $name }

        impl<T: AsRef<[u8]>> $name<T> {
            /// The buffer holds the whole fixed-size header.
            pub fn check_len(&self) -> Result<()> {
                $crate::wire::need(self.buffer.as_ref(), $len)
            }
        }
    };
}

/// The source and destination port accessors of a view whose header
/// starts with them (TCP, UDP, and the ports of a quoted header).
macro_rules! port_fields {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            pub fn src_port(&self) -> u16 {
                $crate::wire::read_u16(self.buffer.as_ref(), 0)
            }

            pub fn dst_port(&self) -> u16 {
                $crate::wire::read_u16(self.buffer.as_ref(), 2)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            pub fn set_src_port(&mut self, p: u16) {
                $crate::wire::write_u16(self.buffer.as_mut(), 0, p);
            }

            pub fn set_dst_port(&mut self, p: u16) {
                $crate::wire::write_u16(self.buffer.as_mut(), 2, p);
            }

            /// Replaces the port at `end`; returns the old one.
            pub fn replace_port(&mut self, end: $crate::wire::End, p: u16) -> u16 {
                let at = match end {
                    $crate::wire::End::Src => 0,
                    $crate::wire::End::Dst => 2,
                };
                let old = $crate::wire::read_u16(self.buffer.as_ref(), at);
                $crate::wire::write_u16(self.buffer.as_mut(), at, p);
                old
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ha;
pub mod icmp;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod ports;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::Icmpv4Packet;
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::Ipv4Packet;
pub use ipv6::{ExtHeaderError, Ipv6Packet, Ipv6Repr, UpperLayer};
pub use ndp::NdpRepr;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// Which end of a packet: its source or its destination (NAT rewrites
/// one of them, in a packet and in the packet an ICMP error quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

/// Why a view could not be made over some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or the length fields claim.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the protocol does not allow (bad version,
    /// header length below the minimum, ...).
    #[error("malformed packet")]
    Malformed,
}

pub type Result<T> = std::result::Result<T, Error>;

/// IP protocol numbers the director cares about.
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// `b` holds at least `len` bytes.
#[inline]
pub(crate) fn need(b: &[u8], len: usize) -> Result<()> {
    if b.len() < len {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// For a header with a length field: the buffer holds the `min` bytes the
/// field is read from, the length `claimed` reads is at least `min`, and
/// the buffer holds that many bytes.
#[inline]
pub(crate) fn need_claimed(b: &[u8], min: usize, claimed: impl Fn(&[u8]) -> usize) -> Result<()> {
    need(b, min)?;
    let len = claimed(b);
    if len < min {
        return Err(Error::Malformed);
    }
    need(b, len)
}

/// `b[start..end]` cut at the end of `b` (empty if it starts past it): a
/// length field may claim more than a quoted packet holds.
#[inline]
pub(crate) fn clamp(b: &[u8], start: usize, end: usize) -> &[u8] {
    b.get(start..end.min(b.len())).unwrap_or_default()
}

/// `clamp`, mutable.
#[inline]
pub(crate) fn clamp_mut(b: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(b.len());
    b.get_mut(start..end).unwrap_or_default()
}

#[inline]
pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod kernel_frames;
