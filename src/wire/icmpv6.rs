//! ICMPv6 (RFC 4443): the errors the director relates to connections and
//! originates on behalf of a VIP (destination unreachable, packet too big,
//! time exceeded, parameter problem), echo, and the header neighbour
//! discovery (`ndp`) rides on. Unlike ICMPv4's, the checksum covers the
//! IPv6 pseudo-header, so computing or checking it takes the addresses.

use super::checksum;
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::{Error, Result, ip_proto};
use std::net::Ipv6Addr;

icmp_view! {
    /// A view over an ICMPv6 message: the buffer is the whole message (an
    /// IPv6 packet's upper-layer bytes), which the checksum covers.
    Icmpv6Packet,
    /// Error messages have types below 128 (RFC 4443 §2.1), including ones
    /// defined later: an unknown error still quotes a packet.
    errors: 0..128,
}

pub const TYPE_DEST_UNREACH: u8 = 1;
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
pub const TYPE_TIME_EXCEEDED: u8 = 3;
pub const TYPE_PARAM_PROBLEM: u8 = 4;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Destination unreachable: no route, and the port unreachable the
/// director sends when a service has no usable real server.
pub const CODE_NO_ROUTE: u8 = 0;
pub const CODE_PORT_UNREACH: u8 = 4;
/// Time exceeded: hop limit exceeded in transit.
pub const CODE_HOP_LIMIT_EXCEEDED: u8 = 0;

fields!(Icmpv6Packet {
    /// The word after the checksum of an echo request or reply, as two.
    4: echo_ident: u16, echo_seq_no: u16;
});

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// The checksum over the IPv6 pseudo-header of `src` and `dst` and the
    /// whole message checks.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::verify_v6(src, dst, ip_proto::ICMPV6, self.buffer.as_ref())
    }

    /// The packet an error quotes, as a view that copes with the quote
    /// ending before the packet does (`Ipv6Packet::new_quoted`). Malformed
    /// for a message that is not an error, truncated if the quote does not
    /// hold a whole IPv6 header.
    pub fn quoted(&self) -> Result<Ipv6Packet<&[u8]>> {
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        Ipv6Packet::new_quoted(self.data())
    }
}

impl<'a> Icmpv6Packet<&'a [u8]> {
    /// `quoted`, borrowed for as long as the bytes are.
    pub fn into_quoted(self) -> Result<Ipv6Packet<&'a [u8]>> {
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        Ipv6Packet::new_quoted(self.into_data())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// `quoted`, mutable: NAT66 rewrites the quoted packet's address and
    /// port, then `fill_checksum`.
    pub fn quoted_mut(&mut self) -> Result<Ipv6Packet<&mut [u8]>> {
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        Ipv6Packet::new_quoted(self.data_mut())
    }

    /// Recomputes the checksum over the pseudo-header and the message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::compute_v6(src, dst, ip_proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// An ICMPv6 error without its quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Error {
    DestUnreachable {
        code: u8,
    },
    /// The MTU of the link the packet did not fit (RFC 8201).
    PacketTooBig {
        mtu: u32,
    },
    TimeExceeded {
        code: u8,
    },
    /// `pointer`: the offset in the invoking packet of the problem.
    ParamProblem {
        code: u8,
        pointer: u32,
    },
}

impl Icmpv6Error {
    pub const HOP_LIMIT_EXCEEDED: Icmpv6Error = Icmpv6Error::TimeExceeded {
        code: CODE_HOP_LIMIT_EXCEEDED,
    };
    pub const PORT_UNREACHABLE: Icmpv6Error = Icmpv6Error::DestUnreachable {
        code: CODE_PORT_UNREACH,
    };

    pub fn msg_type(&self) -> u8 {
        match self {
            Icmpv6Error::DestUnreachable { .. } => TYPE_DEST_UNREACH,
            Icmpv6Error::PacketTooBig { .. } => TYPE_PACKET_TOO_BIG,
            Icmpv6Error::TimeExceeded { .. } => TYPE_TIME_EXCEEDED,
            Icmpv6Error::ParamProblem { .. } => TYPE_PARAM_PROBLEM,
        }
    }

    pub fn code(&self) -> u8 {
        match *self {
            Icmpv6Error::DestUnreachable { code }
            | Icmpv6Error::TimeExceeded { code }
            | Icmpv6Error::ParamProblem { code, .. } => code,
            Icmpv6Error::PacketTooBig { .. } => 0,
        }
    }

    /// The word after the checksum.
    pub fn rest(&self) -> u32 {
        match *self {
            Icmpv6Error::PacketTooBig { mtu } => mtu,
            Icmpv6Error::ParamProblem { pointer, .. } => pointer,
            _ => 0,
        }
    }
}

/// The ICMPv6 messages the director parses and builds, besides neighbour
/// discovery's (`ndp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// An error with the (often cut short) packet it quotes: read it with
    /// `Ipv6Packet::new_quoted`.
    Error { error: Icmpv6Error, quote: &'a [u8] },
}

impl<'a> Icmpv6Repr<'a> {
    /// The kinds above; any other type is malformed here (an unknown error
    /// still has `Icmpv6Packet::quoted`). The code of echo and packet too
    /// big is ignored, as RFC 4443 tells receivers. The checksum is not
    /// checked: `Icmpv6Packet::verify_checksum` takes the addresses.
    pub fn parse(p: &Icmpv6Packet<&'a [u8]>) -> Result<Icmpv6Repr<'a>> {
        let data = &p.buffer[HEADER_LEN..];
        let (ident, seq_no) = (p.echo_ident(), p.echo_seq_no());
        let error = match p.msg_type() {
            TYPE_ECHO_REQUEST => {
                return Ok(Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                });
            }
            TYPE_ECHO_REPLY => {
                return Ok(Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                });
            }
            TYPE_DEST_UNREACH => Icmpv6Error::DestUnreachable { code: p.code() },
            TYPE_PACKET_TOO_BIG => Icmpv6Error::PacketTooBig { mtu: p.rest() },
            TYPE_TIME_EXCEEDED => Icmpv6Error::TimeExceeded { code: p.code() },
            TYPE_PARAM_PROBLEM => Icmpv6Error::ParamProblem {
                code: p.code(),
                pointer: p.rest(),
            },
            _ => return Err(Error::Malformed),
        };
        Ok(Icmpv6Repr::Error { error, quote: data })
    }

    fn body(&self) -> &'a [u8] {
        match *self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => data,
            Icmpv6Repr::Error { quote, .. } => quote,
        }
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body().len()
    }

    /// Writes the message into `buf` with its checksum over the IPv6
    /// pseudo-header of `src` and `dst`; returns its length.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize> {
        let header = match *self {
            Icmpv6Repr::EchoRequest { ident, seq_no, .. } => (
                TYPE_ECHO_REQUEST,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            Icmpv6Repr::EchoReply { ident, seq_no, .. } => (
                TYPE_ECHO_REPLY,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            Icmpv6Repr::Error { error, .. } => (error.msg_type(), error.code(), error.rest()),
        };
        Icmpv6Packet::emit_message(buf, header, self.body(), |p| p.fill_checksum(src, dst))
    }
}

/// Builds a complete IPv6 + ICMPv6 error packet into `out`, quoting as
/// much of the offending packet as fits in the IPv6 minimum MTU (RFC 4443
/// §2.4 (c)), and returns its length. Hop limit 64 and traffic class 0,
/// as Linux sends its errors.
pub fn emit_error(
    out: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    error: Icmpv6Error,
    offending: &[u8],
) -> Result<usize> {
    let room = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;
    let quote = &offending[..offending.len().min(room)];
    let msg = Icmpv6Repr::Error { error, quote };
    let total = ipv6::HEADER_LEN + msg.buffer_len();
    if out.len() < total {
        return Err(Error::Truncated);
    }
    Ipv6Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: msg.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut out[..ipv6::HEADER_LEN])?;
    msg.emit(&mut out[ipv6::HEADER_LEN..total], src, dst)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::End;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xb);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

    /// A UDP packet from A to VIP with `len` bytes of payload.
    fn offending(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv6(A.octets(), VIP.octets(), 1)
            .udp(40000, 53)
            .write(&mut v, &vec![7u8; len])
            .unwrap();
        v
    }

    #[test]
    fn echo_round_trip_with_the_pseudo_header_checksum() {
        let r = Icmpv6Repr::EchoRequest {
            ident: 0x114d,
            seq_no: 1,
            data: b"uvs ping",
        };
        let mut b = [0u8; 32];
        let n = r.emit(&mut b, B, A).unwrap();
        assert_eq!(n, 16);
        let p = Icmpv6Packet::new_checked(&b[..n]).unwrap();
        assert!(p.verify_checksum(B, A));
        assert!(!p.verify_checksum(B, VIP));
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.is_error()),
            (0x114d, 1, false)
        );
        assert_eq!(Icmpv6Repr::parse(&p), Ok(r));
        assert_eq!(p.quoted().err(), Some(Error::Malformed));
        assert_eq!(r.emit(&mut b[..15], B, A), Err(Error::Truncated));
        assert_eq!(
            Icmpv6Packet::new_checked(&b[..7]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn every_error_kind_round_trips() {
        let q = offending(8);
        for error in [
            Icmpv6Error::PORT_UNREACHABLE,
            Icmpv6Error::PacketTooBig { mtu: 1400 },
            Icmpv6Error::HOP_LIMIT_EXCEEDED,
            Icmpv6Error::ParamProblem {
                code: 1,
                pointer: 6,
            },
        ] {
            let r = Icmpv6Repr::Error { error, quote: &q };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b, VIP, A).unwrap();
            let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
            assert!(p.is_error() && p.verify_checksum(VIP, A));
            assert_eq!(
                (p.msg_type(), p.code(), p.rest()),
                (error.msg_type(), error.code(), error.rest())
            );
            assert_eq!(Icmpv6Repr::parse(&p), Ok(r));
            let quoted = p.quoted().unwrap();
            assert_eq!((quoted.src_addr(), quoted.dst_addr()), (A, VIP));
        }
        // An unknown type: an error by its number, but no Repr.
        let mut b = [127u8, 0, 0, 0, 0, 0, 0, 0];
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(Icmpv6Repr::parse(&p), Err(Error::Malformed));
        b[0] = 128;
        assert!(!Icmpv6Packet::new_checked(&b[..]).unwrap().is_error());
    }

    #[test]
    fn a_cut_short_quote_still_parses_and_rewrites() {
        let q = offending(1000);
        let mut out = [0u8; 1400];
        let n = emit_error(
            &mut out,
            VIP,
            A,
            Icmpv6Error::PacketTooBig { mtu: 1280 },
            &q,
        )
        .unwrap();
        assert_eq!(n, q.len() + 48);
        let cut = &q[..44];
        let mut b = vec![0u8; HEADER_LEN + cut.len()];
        Icmpv6Repr::Error {
            error: Icmpv6Error::HOP_LIMIT_EXCEEDED,
            quote: cut,
        }
        .emit(&mut b, VIP, A)
        .unwrap();
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        {
            let quoted = p.quoted().unwrap();
            assert_eq!(quoted.payload_len(), 1008);
            assert_eq!(quoted.payload(), &q[40..44]);
            let u = quoted.upper_layer().unwrap();
            assert_eq!(
                (u.protocol, quoted.upper_payload(&u)),
                (ip_proto::UDP, &q[40..44])
            );
        }
        // NAT66 rewrites the quoted source, then the checksum.
        let mut quoted = p.quoted_mut().unwrap();
        assert_eq!(quoted.replace_addr(End::Src, B), A);
        p.fill_checksum(VIP, A);
        assert!(p.verify_checksum(VIP, A));
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.into_quoted().unwrap().src_addr(), B);
        // A quote shorter than an IPv6 header is no packet.
        let p = Icmpv6Packet::new_checked(&b[..HEADER_LEN + 39]).unwrap();
        assert_eq!(p.quoted().err(), Some(Error::Truncated));
    }

    #[test]
    fn an_originated_error_fits_the_minimum_mtu() {
        let q = offending(1400);
        let mut out = [0u8; 1500];
        let n = emit_error(&mut out, VIP, A, Icmpv6Error::PORT_UNREACHABLE, &q).unwrap();
        assert_eq!(n, ipv6::MIN_MTU);
        let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(
            (ip.hop_limit(), ip.next_header(), ip.payload_len()),
            (64, 58, 1240)
        );
        let p = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(p.verify_checksum(VIP, A));
        assert_eq!(p.data(), &q[..1232]);
        assert_eq!(
            emit_error(&mut out[..1279], VIP, A, Icmpv6Error::PORT_UNREACHABLE, &q),
            Err(Error::Truncated)
        );
    }
}
