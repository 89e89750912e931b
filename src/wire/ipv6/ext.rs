//! The walk over an IPv6 packet's extension headers (RFC 8200 §4) to its
//! upper-layer header: bounded, never reading past the payload.

use super::{HEADER_LEN, next_header};
use crate::wire::{Error, read_u16, read_u32};

/// The most extension headers the walk skips before it gives up: Linux's
/// `IP6_MAX_EXT_HDRS_CNT` (commit 3744b0964d52 bounds all its walks with
/// it). RFC 8200 §4.1's occurrence rules make 8 the practical most; Linux
/// leaves room for quirky setups, and the director, standing in front of
/// Linux real servers, refuses nothing they would take. Without a bound a
/// 1500-byte frame of 8-byte headers costs 182 steps to walk.
pub const MAX_EXT_HEADERS: usize = 12;

/// What a Fragment header (RFC 8200 §4.5) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// In 8-byte units, as IPv4's.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

impl FragInfo {
    /// Offset 0 and no more fragments: a whole packet with a Fragment
    /// header, processed as unfragmented (RFC 6946).
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }

    /// The first of several fragments: the only one with the ports.
    pub fn is_first(&self) -> bool {
        self.offset == 0 && self.more
    }

    /// Any fragment but the first: no upper-layer header in it.
    pub fn is_later(&self) -> bool {
        self.offset != 0
    }
}

/// Where the extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, ESP, any value that is
    /// not an extension header the walk knows), or No Next Header (59).
    pub protocol: u8,
    /// From the start of the IPv6 header, as IPv4's `header_len`: 40 plus
    /// the extension headers. For a later fragment (`is_later_fragment`)
    /// the walk stops after the Fragment header, and `offset` points at
    /// fragment data, not at an upper-layer header.
    pub offset: usize,
    /// The Fragment header's fields, if there was one.
    pub frag: Option<FragInfo>,
}

impl UpperLayer {
    /// True for any fragment (first or later), as `Ipv4Packet::is_fragment`;
    /// an atomic fragment is a whole packet.
    pub fn is_fragment(&self) -> bool {
        self.frag.is_some_and(|f| !f.is_atomic())
    }

    pub fn is_first_fragment(&self) -> bool {
        self.frag.is_some_and(|f| f.is_first())
    }

    pub fn is_later_fragment(&self) -> bool {
        self.frag.is_some_and(|f| f.is_later())
    }
}

/// Why the walk found no upper layer: each a drop the data plane counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExtHeaderError {
    /// A header (or its length byte) runs past the payload. In a first
    /// fragment the chain must be whole (RFC 8200 §4.5): this too.
    #[error("IPv6 extension header runs past the payload")]
    Truncated,
    /// More than `MAX_EXT_HEADERS` extension headers.
    #[error("more than {MAX_EXT_HEADERS} IPv6 extension headers")]
    TooMany,
    /// Hop-by-Hop Options anywhere but right after the IPv6 header (RFC
    /// 8200 §4.3); Linux drops these with a parameter problem.
    #[error("IPv6 hop-by-hop options not first")]
    HopByHopNotFirst,
    /// A second Fragment header: which one tells where the ports are is
    /// ambiguous, and an atomic fragment must not hide a real one.
    #[error("two IPv6 fragment headers")]
    RepeatedFragment,
}

impl From<ExtHeaderError> for Error {
    fn from(e: ExtHeaderError) -> Error {
        match e {
            ExtHeaderError::Truncated => Error::Truncated,
            _ => Error::Malformed,
        }
    }
}

/// The walk over `payload`, whose first header is `first`. Every step
/// skips 8 bytes or more and checks the header lies inside `payload`
/// before reading past its first two bytes.
pub(super) fn walk(first: u8, payload: &[u8]) -> std::result::Result<UpperLayer, ExtHeaderError> {
    use next_header::*;
    let (mut next, mut at, mut count, mut frag) = (first, 0usize, 0usize, None);
    loop {
        if !matches!(next, HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS) {
            return Ok(UpperLayer {
                protocol: next,
                offset: HEADER_LEN + at,
                frag,
            });
        }
        if next == HOP_BY_HOP && count > 0 {
            return Err(ExtHeaderError::HopByHopNotFirst);
        }
        if count == MAX_EXT_HEADERS {
            return Err(ExtHeaderError::TooMany);
        }
        count += 1;
        let len_byte = *payload.get(at + 1).ok_or(ExtHeaderError::Truncated)?;
        let len = match next {
            FRAGMENT => 8,
            // AH counts 4-byte units, less 2 (RFC 4302 §2.2).
            AUTH => (usize::from(len_byte) + 2) * 4,
            // 8-byte units, not counting the first 8 (RFC 8200 §4.3-4.6).
            _ => (usize::from(len_byte) + 1) * 8,
        };
        let h = payload.get(at..at + len).ok_or(ExtHeaderError::Truncated)?;
        if next == FRAGMENT {
            if frag.is_some() {
                return Err(ExtHeaderError::RepeatedFragment);
            }
            let f = FragInfo {
                offset: read_u16(h, 2) >> 3,
                more: h[3] & 1 != 0,
                ident: read_u32(h, 4),
            };
            frag = Some(f);
            if f.is_later() {
                // What follows is the middle of the original packet.
                return Ok(UpperLayer {
                    protocol: h[0],
                    offset: HEADER_LEN + at + len,
                    frag,
                });
            }
        }
        next = h[0];
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::next_header::*;
    use super::*;
    use crate::wire::ip_proto;
    use crate::wire::ipv6::{Ipv6Packet, test_packet};

    /// A packet whose first header is `first`, carrying `payload`.
    fn packet(first: u8, payload: &[u8]) -> Vec<u8> {
        let ends = ("2001:2::a".parse().unwrap(), "2001:2::b".parse().unwrap());
        test_packet(ends, first, payload, payload.len())
    }

    /// An extension header of kind `kind` and `len` bytes (a multiple of
    /// 8, of 4 for AH) followed by `next`.
    fn ext(kind: u8, next: u8, len: usize) -> Vec<u8> {
        let mut h = vec![0x5a; len];
        h[0] = next;
        h[1] = match kind {
            FRAGMENT => 0,
            AUTH => (len / 4 - 2) as u8,
            _ => (len / 8 - 1) as u8,
        };
        h
    }

    fn frag(next: u8, offset: u16, more: bool, ident: u32) -> Vec<u8> {
        let mut h = ext(FRAGMENT, next, 8);
        h[2..4].copy_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
        h[4..8].copy_from_slice(&ident.to_be_bytes());
        h
    }

    /// A packet with the chain `kinds` (8 bytes each, 16 for the first
    /// routing header) ahead of 8 bytes of `upper`.
    fn chain(kinds: &[u8], upper: u8) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(upper);
            let len = if *k == ROUTING { 16 } else { 8 };
            payload.extend(if *k == FRAGMENT {
                frag(next, 0, true, 7)
            } else {
                ext(*k, next, len)
            });
        }
        payload.extend_from_slice(&[0xee; 8]);
        packet(kinds.first().copied().unwrap_or(upper), &payload)
    }

    fn walk_of(b: &[u8]) -> std::result::Result<UpperLayer, ExtHeaderError> {
        Ipv6Packet::new_checked(b).unwrap().upper_layer()
    }

    #[test]
    fn each_extension_header_is_skipped_by_its_own_length() {
        let mut payload = ext(HOP_BY_HOP, ROUTING, 16);
        payload.extend(ext(ROUTING, DEST_OPTS, 24));
        payload.extend(ext(DEST_OPTS, AUTH, 8));
        payload.extend(ext(AUTH, FRAGMENT, 12));
        payload.extend(frag(ip_proto::TCP, 0, false, 1));
        payload.extend_from_slice(&[0xee; 20]);
        let mut b = packet(HOP_BY_HOP, &payload);
        let u = walk_of(&b).unwrap();
        assert_eq!(
            (u.protocol, u.offset),
            (ip_proto::TCP, 40 + 16 + 24 + 8 + 12 + 8)
        );
        // An atomic fragment is a whole packet.
        assert!(!u.is_fragment() && !u.is_first_fragment() && !u.is_later_fragment());
        let p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.upper_payload(&u), &[0xee; 20]);
        let mut p = p;
        p.upper_payload_mut(&u)[0] = 1;
        assert_eq!(b[108], 1);
    }

    #[test]
    fn first_and_later_fragments_are_told_apart() {
        let mut payload = ext(DEST_OPTS, FRAGMENT, 8);
        payload.extend(frag(ip_proto::UDP, 0, true, 0xdead_beef));
        payload.extend_from_slice(&[0xee; 8]);
        let u = walk_of(&packet(DEST_OPTS, &payload)).unwrap();
        assert_eq!((u.protocol, u.offset), (ip_proto::UDP, 56));
        assert_eq!(
            u.frag,
            Some(FragInfo {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert!(u.is_fragment() && u.is_first_fragment() && !u.is_later_fragment());
        // A later fragment: what follows the Fragment header is data, even
        // if it looks like an extension header running past the end.
        let mut payload = frag(DEST_OPTS, 181, false, 9);
        payload.extend_from_slice(&[0, 255, 0, 0]);
        let u = walk_of(&packet(FRAGMENT, &payload)).unwrap();
        assert_eq!((u.protocol, u.offset), (DEST_OPTS, 48));
        assert!(u.is_fragment() && u.is_later_fragment() && !u.is_first_fragment());
        assert_eq!(
            u.frag.map(|f| (f.offset, f.more, f.ident)),
            Some((181, false, 9))
        );
    }

    #[test]
    fn the_chain_may_hold_twelve_headers_not_thirteen() {
        let mut kinds = vec![HOP_BY_HOP];
        kinds.extend([DEST_OPTS; 11]);
        let u = walk_of(&chain(&kinds, ip_proto::TCP)).unwrap();
        assert_eq!((u.protocol, u.offset), (ip_proto::TCP, 40 + 12 * 8));
        kinds.push(ROUTING);
        assert_eq!(
            walk_of(&chain(&kinds, ip_proto::TCP)),
            Err(ExtHeaderError::TooMany)
        );
        // No Next Header ends the walk; so does any upper layer.
        let u = walk_of(&chain(&[ROUTING, AUTH], NONE)).unwrap();
        assert_eq!((u.protocol, u.offset), (NONE, 40 + 16 + 8));
        let u = walk_of(&chain(&[], next_header::ESP)).unwrap();
        assert_eq!((u.protocol, u.offset), (next_header::ESP, 40));
    }

    #[test]
    fn a_header_one_byte_past_the_payload_is_truncated() {
        let mut b = chain(&[HOP_BY_HOP, ROUTING], ip_proto::UDP);
        // Payload: 8 + 16 bytes of headers, 8 of UDP. Cut it to end one
        // byte short of the routing header, the buffer keeping the bytes.
        for (len, want) in [(23, Err(ExtHeaderError::Truncated)), (24, Ok(40 + 24))] {
            Ipv6Packet::new_unchecked(&mut b[..]).set_payload_len(len);
            let got = walk_of(&b).map(|u| u.offset);
            assert_eq!(got, want, "payload length {len}");
        }
        // Not even the length byte.
        Ipv6Packet::new_unchecked(&mut b[..]).set_payload_len(9);
        assert_eq!(walk_of(&b), Err(ExtHeaderError::Truncated));
        // The same cut in a quote.
        let b = chain(&[HOP_BY_HOP, ROUTING], ip_proto::UDP);
        let q = Ipv6Packet::new_quoted(&b[..40 + 23]).unwrap();
        assert_eq!(q.upper_layer(), Err(ExtHeaderError::Truncated));
        assert_eq!(Error::from(ExtHeaderError::Truncated), Error::Truncated);
    }

    #[test]
    fn misplaced_and_repeated_headers_are_refused() {
        let b = chain(&[DEST_OPTS, HOP_BY_HOP], ip_proto::TCP);
        assert_eq!(walk_of(&b), Err(ExtHeaderError::HopByHopNotFirst));
        let b = chain(&[FRAGMENT, DEST_OPTS, FRAGMENT], ip_proto::TCP);
        assert_eq!(walk_of(&b), Err(ExtHeaderError::RepeatedFragment));
        assert_eq!(Error::from(ExtHeaderError::TooMany), Error::Malformed);
    }
}
