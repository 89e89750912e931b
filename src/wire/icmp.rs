//! ICMPv4 error messages (RFC 792): the ones the director originates on
//! behalf of a VIP (time exceeded when a forwarded packet's TTL runs out,
//! port unreachable when a service has no usable real server, fragmentation
//! needed), and the ones it relates to a connection and passes on.

use super::checksum;
use super::ipv4::{self, Ipv4Repr};
use super::{Error, Result, ip_proto};
use std::net::Ipv4Addr;

icmp_view! {
    /// A view over an ICMPv4 message.
    Icmpv4Packet,
    /// The kinds IPVS relates to a connection: destination unreachable,
    /// source quench, time exceeded.
    errors: TYPE_DEST_UNREACH | TYPE_SOURCE_QUENCH | TYPE_TIME_EXCEEDED,
}

pub const TYPE_DEST_UNREACH: u8 = 3;
/// Source quench: obsolete, but IPVS still relates it to connections.
pub const TYPE_SOURCE_QUENCH: u8 = 4;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_PORT_UNREACH: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const CODE_TTL_EXCEEDED: u8 = 0;

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

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

    /// Whether this is PMTU discovery's "fragmentation needed".
    pub fn is_frag_needed(&self) -> bool {
        self.icmp_type == TYPE_DEST_UNREACH && self.code == CODE_FRAG_NEEDED
    }
}

/// An ICMP error message with the packet it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpErrorRepr<'a> {
    pub error: IcmpError,
    pub quote: &'a [u8],
}

impl<'a> IcmpErrorRepr<'a> {
    /// Accepts only the error kinds the director relates to connections.
    pub fn parse(p: &Icmpv4Packet<&'a [u8]>) -> Result<IcmpErrorRepr<'a>> {
        if !p.is_error() {
            return Err(Error::Malformed);
        }
        Ok(IcmpErrorRepr {
            error: IcmpError {
                icmp_type: p.msg_type(),
                code: p.code(),
                rest: p.rest(),
            },
            quote: &p.buffer[HEADER_LEN..],
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.quote.len()
    }

    /// Writes the message, checksum included; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let e = self.error;
        let header = (e.icmp_type, e.code, e.rest);
        Icmpv4Packet::emit_message(buf, header, self.quote, |p| p.fill_checksum())
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
    let quote = &offending[..offending.len().min(offending_header_len + 8)];
    let msg = IcmpErrorRepr { error: err, quote };
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::ICMP,
        payload_len: msg.buffer_len(),
        ttl: 64,
        tos: 0xc0, // internetwork control, as Linux sends ICMP errors
        ident: 0,
        dont_frag: false,
    };
    let total = ipv4::HEADER_LEN + msg.buffer_len();
    if out.len() < total {
        return Err(Error::Truncated);
    }
    ip.emit(&mut out[..ipv4::HEADER_LEN])?;
    msg.emit(&mut out[ipv4::HEADER_LEN..total])?;
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
        let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
        let r = IcmpErrorRepr::parse(&icmp).unwrap();
        assert_eq!(r.error, IcmpError::TTL_EXCEEDED);
        assert_eq!(r.quote, &orig[..28]);
    }

    #[test]
    fn only_error_kinds_parse() {
        let mut m = [0u8; 16];
        m[0] = 8; // echo request
        let p = Icmpv4Packet::new_checked(&m[..]).unwrap();
        assert_eq!(IcmpErrorRepr::parse(&p), Err(Error::Malformed));
        assert!(Icmpv4Packet::new_checked(&m[..7]).is_err());
    }
}
