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
    // A view over an IP packet, which an ICMP error may quote cut short:
    // `new_quoted` checks only the header (the view's `check_header`).
    ($(#[$meta:meta])* $name:ident, quoted) => {
        view! { $(#[$meta])* $name }

        impl<T: AsRef<[u8]>> $name<T> {
            /// A view over a packet quoted in an ICMP error: the header
            /// must be complete, the payload may be cut short (an error
            /// quotes what fits). `payload` then ends where the buffer
            /// does.
            pub fn new_quoted(buffer: T) -> Result<Self> {
                let p = Self::new_unchecked(buffer);
                p.check_header()?;
                Ok(p)
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

/// A view's fields, laid out as the RFCs draw a header: a row of fields
/// from an offset, `4: ident / set_ident: u16, frag_word: u16;`, each
/// field at its row's offset plus the sizes of the fields before it in
/// the row. Each field gets a getter, and a setter where one is named;
/// docs before a row go to its getters. The kinds are big-endian numbers
/// (`u8`, `u16`, `u32`, `u64`), a 16-bit length read as a `usize` and set
/// as a `u16` (`len`), and addresses (`ipv4`, `ipv6`, `mac`); `@one`
/// makes one field at an offset, of those kinds or, read only, the bytes
/// at a range (`bytes`). The view's `check_len` asks for every byte they
/// name, so that on a checked view no accessor can panic.
macro_rules! fields {
    ($view:ident {
        $($(#[$meta:meta])* $row:literal: $($get:ident $(/ $set:ident)?: $kind:tt),+;)*
    }) => {
        $(fields!(@row $view, [$(#[$meta])*], $row; $($get $(/ $set)?: $kind),+);)*
    };
    (@row $view:ident, $attrs:tt, $at:expr;
        $get:ident $(/ $set:ident)?: $kind:tt $(, $($rest:tt)+)?
    ) => {
        fields!(@one $view, $attrs, $at, $get $(/ $set)?: $kind);
        $(fields!(@row $view, $attrs, $at + fields!(@size $kind); $($rest)+);)?
    };
    (@one $view:ident, [$($attrs:tt)*], $at:expr, $get:ident $(/ $set:ident)?: $kind:tt) => {
        impl<T: AsRef<[u8]>> $view<T> {
            $($attrs)*
            #[inline]
            pub fn $get(&self) -> fields!(@get_ty $kind) {
                fields!(@get $kind, self.buffer.as_ref(), $at)
            }
        }

        $(
            impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
                #[inline]
                pub fn $set(&mut self, v: fields!(@set_ty $kind)) {
                    fields!(@set $kind, self.buffer.as_mut(), $at, v);
                }
            }
        )?
    };
    (@size u8) => { 1 };
    (@size u16) => { 2 };
    (@size len) => { 2 };
    (@size u32) => { 4 };
    (@size ipv4) => { 4 };
    (@size mac) => { 6 };
    (@size u64) => { 8 };
    (@size ipv6) => { 16 };
    (@get_ty len) => { usize };
    (@get_ty bytes) => { &[u8] };
    (@get_ty $kind:tt) => { fields!(@set_ty $kind) };
    (@set_ty len) => { u16 };
    (@set_ty ipv4) => { std::net::Ipv4Addr };
    (@set_ty ipv6) => { std::net::Ipv6Addr };
    (@set_ty mac) => { $crate::wire::MacAddr };
    (@set_ty $int:ty) => { $int };
    (@get u8, $b:expr, $at:expr) => { $b[$at] };
    (@get u16, $b:expr, $at:expr) => { $crate::wire::read_u16($b, $at) };
    (@get u32, $b:expr, $at:expr) => { $crate::wire::read_u32($b, $at) };
    (@get u64, $b:expr, $at:expr) => { $crate::wire::read_u64($b, $at) };
    (@get len, $b:expr, $at:expr) => { usize::from($crate::wire::read_u16($b, $at)) };
    (@get ipv4, $b:expr, $at:expr) => {
        std::net::Ipv4Addr::from($crate::wire::read_u32($b, $at))
    };
    (@get ipv6, $b:expr, $at:expr) => { $crate::wire::read_ipv6($b, $at) };
    (@get mac, $b:expr, $at:expr) => { $crate::wire::read_mac($b, $at) };
    (@get bytes, $b:expr, $at:expr) => { &$b[$at] };
    (@set u8, $b:expr, $at:expr, $v:expr) => { $b[$at] = $v };
    (@set u16, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_u16($b, $at, $v) };
    (@set u32, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_u32($b, $at, $v) };
    (@set u64, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_u64($b, $at, $v) };
    (@set len, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_u16($b, $at, $v) };
    (@set ipv4, $b:expr, $at:expr, $v:expr) => {
        $crate::wire::write_u32($b, $at, u32::from($v))
    };
    (@set ipv6, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_ipv6($b, $at, $v) };
    (@set mac, $b:expr, $at:expr, $v:expr) => { $crate::wire::write_mac($b, $at, $v) };
}

/// The two fields of a view that an [`End`] names (its source and
/// destination addresses, or ports), made as `fields!` makes them, and
/// `$replace(end, v)`, which writes `v` at that end and returns what was
/// there.
macro_rules! end_fields {
    ($view:ident: $kind:tt {
        $src:ident / $set_src:ident @ $src_at:expr,
        $dst:ident / $set_dst:ident @ $dst_at:expr,
        $(#[$meta:meta])* $vis:vis $replace:ident $(,)?
    }) => {
        fields!(@one $view, [], $src_at, $src / $set_src: $kind);
        fields!(@one $view, [], $dst_at, $dst / $set_dst: $kind);

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            $(#[$meta])*
            #[inline]
            $vis fn $replace(
                &mut self,
                end: $crate::wire::End,
                v: fields!(@set_ty $kind),
            ) -> fields!(@get_ty $kind) {
                let at = match end {
                    $crate::wire::End::Src => $src_at,
                    $crate::wire::End::Dst => $dst_at,
                };
                let old = fields!(@get $kind, self.buffer.as_ref(), at);
                fields!(@set $kind, self.buffer.as_mut(), at, v);
                old
            }
        }
    };
}

/// The source and destination port accessors of a view whose header
/// starts with them (TCP, UDP, and the ports of a quoted header).
macro_rules! port_fields {
    ($name:ident) => {
        end_fields!($name: u16 {
            src_port / set_src_port @ 0,
            dst_port / set_dst_port @ 2,
            /// Replaces the port at `end`; returns the old one.
            pub replace_port,
        });
    };
}

/// A view over an ICMPv4 or ICMPv6 message: what the two share, a
/// header of type, code, checksum and the 32-bit word after them
/// (`HEADER_LEN`, 8 bytes, in the view's module), then the data; and
/// `is_error`, whether the type is one of the family's errors (`$errors`,
/// a pattern), which quote the packet they are about.
macro_rules! icmp_view {
    (
        $(#[$meta:meta])* $view:ident,
        $(#[$errors_meta:meta])* errors: $errors:pat $(,)?
    ) => {
        /// Type, code, checksum and the 32-bit word after them (the echo
        /// identifier and sequence number, an MTU, a pointer, or unused).
        /// Every message the RFCs define has it; shorter ones are refused.
        pub const HEADER_LEN: usize = 8;

        view! {
            $(#[$meta])*
            $view,
            len = HEADER_LEN
        }

        fields!($view {
            0: msg_type / set_msg_type: u8, code / set_code: u8, checksum / set_checksum: u16;
            /// The word after the checksum: the next-hop MTU of ICMPv4's
            /// frag-needed, the MTU of ICMPv6's packet too big, the pointer
            /// of parameter problem, a neighbour advertisement's flags.
            4: rest / set_rest: u32;
        });

        impl<T: AsRef<[u8]>> $view<T> {
            $(#[$errors_meta])*
            pub fn is_error(&self) -> bool {
                matches!(self.msg_type(), $errors)
            }

            /// What follows the 8-byte header: the quoted packet of an
            /// error, echo data, a neighbour message's target and options.
            pub fn data(&self) -> &[u8] {
                &self.buffer.as_ref()[HEADER_LEN..]
            }
        }

        impl<'a> $view<&'a [u8]> {
            /// `data`, borrowed for as long as the bytes are.
            pub fn into_data(self) -> &'a [u8] {
                &self.buffer[HEADER_LEN..]
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            pub fn data_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[HEADER_LEN..]
            }
        }

        impl<'b> $view<&'b mut [u8]> {
            /// A `Repr`'s `emit`: the message's type, code and word, then
            /// `data`, in the first `HEADER_LEN + data.len()` bytes of
            /// `buf`, then the checksum, which `fill` computes; returns
            /// the message's length.
            fn emit_message(
                buf: &'b mut [u8],
                (msg_type, code, rest): (u8, u8, u32),
                data: &[u8],
                fill: impl FnOnce(&mut Self),
            ) -> $crate::wire::Result<usize> {
                let n = HEADER_LEN + data.len();
                let b = buf.get_mut(..n).ok_or($crate::wire::Error::Truncated)?;
                let mut p = Self::new_unchecked(b);
                p.set_msg_type(msg_type);
                p.set_code(code);
                p.set_rest(rest);
                p.data_mut().copy_from_slice(data);
                fill(&mut p);
                Ok(n)
            }
        }
    };
}

/// Tests a TCP or UDP view's IPv6 checksum: it verifies over the
/// addresses `ends` and not over `wrong`, nor once zeroed, and
/// `fill_checksum_v6` puts it back. Gives the checksum.
#[cfg(test)]
macro_rules! check_v6_checksum {
    ($p:ident, $ends:expr, $wrong:expr) => {{
        let ((src, dst), (wrong_src, wrong_dst)) = ($ends, $wrong);
        assert!($p.verify_checksum_v6(src, dst));
        assert!(!$p.verify_checksum_v6(wrong_src, wrong_dst));
        let c = $p.checksum();
        $p.set_checksum(0);
        assert!(!$p.verify_checksum_v6(src, dst));
        $p.fill_checksum_v6(src, dst);
        assert_eq!($p.checksum(), c);
        c
    }};
}

pub mod arp;
pub mod carry;
pub mod checksum;
pub mod ethernet;
pub mod ha;
pub mod icmp;
pub mod icmpv6;
pub mod ip6tnl;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod ports;
pub mod tcp;
pub mod tunnel;
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

/// IP protocol numbers the director cares about: an IPv4 header's
/// protocol, an IPv6 header's next header (one registry), including the
/// IPv6 extension headers (`ipv6::next_header` names those).
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// An IPv6 packet inside IPv4 or IPv6 (6in4, 6in6).
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload: encrypts what follows, so as far
    /// as the extension-header walk goes, an upper layer.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AUTH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const NONE: u8 = 59;
    /// IPv6 Destination Options.
    pub const DEST_OPTS: u8 = 60;
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

#[inline]
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[inline]
pub(crate) fn write_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The IPv6 address at `at` (16 bytes the caller has checked are there).
#[inline]
pub(crate) fn read_ipv6(b: &[u8], at: usize) -> std::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    std::net::Ipv6Addr::from(a)
}

#[inline]
pub(crate) fn write_ipv6(b: &mut [u8], at: usize, a: std::net::Ipv6Addr) {
    b[at..at + 16].copy_from_slice(&a.octets());
}

#[inline]
pub(crate) fn read_mac(b: &[u8], at: usize) -> MacAddr {
    let mut a = [0u8; 6];
    a.copy_from_slice(&b[at..at + 6]);
    MacAddr(a)
}

#[inline]
pub(crate) fn write_mac(b: &mut [u8], at: usize, a: MacAddr) {
    b[at..at + 6].copy_from_slice(&a.0);
}

#[cfg(test)]
mod kernel_frames;
