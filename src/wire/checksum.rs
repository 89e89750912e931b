//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` as big-endian 16-bit words, not folded.
/// An odd trailing byte is padded with zero, as RFC 1071 says.
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = rest.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a wide sum into 16 bits (end-around carry), without complementing.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data whose words sum to `acc`.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// Sum of the TCP/UDP pseudo-header for IPv4.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u64 {
    sum(&src.octets()) + sum(&dst.octets()) + u64::from(protocol) + u64::from(length)
}

/// Sum of the upper-layer pseudo-header for IPv6 (RFC 8200 §8.1): both
/// addresses, the upper-layer length as 32 bits and the next header value
/// of the upper layer (not of the first extension header). TCP, UDP and
/// ICMPv6 all checksum over it; IPv6 itself has no header checksum.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u64 {
    sum(&src.octets()) + sum(&dst.octets()) + u64::from(next_header) + u64::from(length)
}

/// The addresses of a transport checksum's pseudo-header, IPv4's or
/// IPv6's: what a builder generic over the family sums.
pub trait PseudoHeader: Copy {
    /// `pseudo_header` or `pseudo_header_v6`.
    fn pseudo_header(src: Self, dst: Self, protocol: u8, length: u32) -> u64;
}

impl PseudoHeader for Ipv4Addr {
    #[inline]
    fn pseudo_header(src: Self, dst: Self, protocol: u8, length: u32) -> u64 {
        pseudo_header(src, dst, protocol, length)
    }
}

impl PseudoHeader for Ipv6Addr {
    #[inline]
    fn pseudo_header(src: Self, dst: Self, next_header: u8, length: u32) -> u64 {
        pseudo_header_v6(src, dst, next_header, length)
    }
}

/// Whether the upper-layer bytes `b` (a TCP segment, a UDP datagram, an
/// ICMPv6 message, checksum field included) check over the IPv6
/// pseudo-header of `src`, `dst` and `next_header`.
#[inline]
pub fn verify_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, b: &[u8]) -> bool {
    fold(pseudo_header_v6(src, dst, next_header, b.len() as u32) + sum(b)) == 0xffff
}

/// The checksum field value of the upper-layer bytes `b`, their checksum
/// field zero, over the IPv6 pseudo-header of `src`, `dst` and
/// `next_header`.
#[inline]
pub fn compute_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, b: &[u8]) -> u16 {
    finish(pseudo_header_v6(src, dst, next_header, b.len() as u32) + sum(b))
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word changed from
/// `old` to `new`: HC' = ~(~HC + ~m + m').
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// As [`update16`] for a 32-bit field (an IPv4 address), word by word.
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

/// As [`update16`] for an IPv6 address, word by word: the transport
/// checksum after NAT66 rewrote an address its pseudo-header covers.
pub fn update128(check: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    let (o, n) = (old.segments(), new.segments());
    o.iter().zip(n).fold(check, |c, (o, n)| update16(c, *o, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3: words 0001 f203 f4f5 f6f7
        // sum to 0x2ddf0, folding to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut data: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37)).collect();
        let before = finish(sum(&data));
        let old = u16::from_be_bytes([data[10], data[11]]);
        data[10] = 0xab;
        data[11] = 0xcd;
        let after = finish(sum(&data));
        assert_eq!(update16(before, old, 0xabcd), after);

        let old32 = u32::from_be_bytes([data[20], data[21], data[22], data[23]]);
        data[20..24].copy_from_slice(&0xc612_0064u32.to_be_bytes());
        assert_eq!(update32(after, old32, 0xc612_0064), finish(sum(&data)));
    }

    #[test]
    fn v6_pseudo_header_is_rfc8200s() {
        // The 40-byte pseudo-header of RFC 8200 §8.1 written out, summed
        // as bytes: the same as the function's sum.
        let src: Ipv6Addr = "2001:2::b".parse().unwrap();
        let dst: Ipv6Addr = "2001:2::a".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&70_000u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(pseudo_header_v6(src, dst, 17, 70_000)), fold(sum(&ph)));
    }

    #[test]
    fn v6_incremental_matches_recompute() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:2::a".parse().unwrap(),
            "2001:2:0:1::11".parse().unwrap(),
        );
        let payload = [0x12u8, 0x34, 0x56, 0x78, 0x9a];
        let csum = |x| finish(pseudo_header_v6(x, b, 6, 5) + sum(&payload));
        let other: Ipv6Addr = "2001:2:ffff::1234:5678".parse().unwrap();
        assert_eq!(update128(csum(a), a, other), csum(other));
    }
}
