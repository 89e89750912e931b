//! ICMPv4 error messages (RFC 792) that the director originates on behalf of
//! a VIP: time exceeded when a forwarded packet's TTL runs out, and port
//! unreachable when a service has no usable real server, as IPVS does.

use super::checksum;
use super::ipv4::Ipv4Repr;
use super::{Error, Result, ip_proto, write_u16};
use std::net::Ipv4Addr;

pub const TYPE_DEST_UNREACH: u8 = 3;
pub const CODE_PORT_UNREACH: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// An ICMP error: type, code and the 32-bit "unused / next-hop MTU" word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    pub icmp_type: u8,
    pub code: u8,
    pub rest: u32,
}

impl IcmpError {
    pub const TTL_EXCEEDED: IcmpError = IcmpError {
        icmp_type: TYPE_TIME_EXCEEDED,
        code: CODE_TTL_EXCEEDED,
        rest: 0,
    };
    pub const PORT_UNREACHABLE: IcmpError = IcmpError {
        icmp_type: TYPE_DEST_UNREACH,
        code: CODE_PORT_UNREACH,
        rest: 0,
    };

    /// "Fragmentation needed" with the next-hop MTU (RFC 1191).
    pub fn frag_needed(mtu: u32) -> IcmpError {
        IcmpError {
            icmp_type: TYPE_DEST_UNREACH,
            code: CODE_FRAG_NEEDED,
            rest: mtu & 0xffff,
        }
    }
}

/// Builds a complete IPv4 + ICMP error packet into `out` quoting the
/// offending packet's header and first 8 payload bytes (RFC 792), and returns
/// its length.
pub fn emit_error(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    err: IcmpError,
    offending: &[u8],
    offending_header_len: usize,
) -> Result<usize> {
    let quote_len = offending.len().min(offending_header_len + 8);
    let icmp_len = 8 + quote_len;
    let total = 20 + icmp_len;
    if out.len() < total {
        return Err(Error::Truncated);
    }
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::ICMP,
        payload_len: icmp_len,
        ttl: 64,
        tos: 0xc0, // internetwork control, as Linux sends ICMP errors
        ident: 0,
        dont_frag: false,
    };
    ip.emit(&mut out[..20])?;
    let icmp = &mut out[20..total];
    icmp[0] = err.icmp_type;
    icmp[1] = err.code;
    write_u16(icmp, 2, 0);
    icmp[4..8].copy_from_slice(&err.rest.to_be_bytes());
    icmp[8..].copy_from_slice(&offending[..quote_len]);
    let c = checksum::finish(checksum::sum(icmp));
    write_u16(icmp, 2, c);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Packet;

    #[test]
    fn error_quotes_header_and_eight_bytes() {
        let mut orig = [0u8; 60];
        Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 10),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            protocol: 6,
            payload_len: 40,
            ttl: 1,
            tos: 0,
            ident: 1,
            dont_frag: true,
        }
        .emit(&mut orig)
        .unwrap();
        let mut out = [0u8; 128];
        let n = emit_error(
            &mut out,
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 10),
            IcmpError::TTL_EXCEEDED,
            &orig,
            20,
        )
        .unwrap();
        assert_eq!(n, 20 + 8 + 28);
        let p = Ipv4Packet::new_checked(&out[..n]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(checksum::fold(checksum::sum(p.payload())), 0xffff);
        assert_eq!(&p.payload()[8..], &orig[..28]);
    }
}
