//! NAT translation (LVS `-m`): one end of a TCP or UDP packet, and of the
//! packet an ICMP error quotes, is rewritten in place. Checksums are
//! updated incrementally (RFC 1624) rather than recomputed, so the cost does
//! not depend on the payload size, and frames whose L4 checksum the sender
//! left for offload (CHECKSUM_PARTIAL) stay correct: their checksum field
//! holds only the pseudo-header sum, so only the address change is folded
//! in, exactly as IPVS's `tcp_partial_csum_update` does.

use crate::wire::icmp::{TYPE_DEST_UNREACH, TYPE_TIME_EXCEEDED};
use crate::wire::{Error, Ipv4Packet, Result, checksum, ip_proto};
use std::net::Ipv4Addr;

/// ICMP source quench: obsolete, but IPVS still relates it to connections.
const TYPE_SOURCE_QUENCH: u8 = 4;

/// Which end of a packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

impl End {
    fn addr_at(self) -> usize {
        match self {
            End::Src => 12,
            End::Dst => 16,
        }
    }

    fn port_at(self) -> usize {
        match self {
            End::Src => 0,
            End::Dst => 2,
        }
    }
}

/// Where the L4 checksum of `protocol` sits, and the smallest header that
/// holds it.
fn l4_layout(protocol: u8) -> Option<(usize, usize)> {
    match protocol {
        ip_proto::TCP => Some((16, 20)),
        ip_proto::UDP => Some((6, 8)),
        _ => None,
    }
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Replaces the address at `at` in an IPv4 header starting at `ip[0]` and
/// updates the header checksum; returns the old address.
fn set_addr(ip: &mut [u8], at: usize, addr: Ipv4Addr) -> u32 {
    let old = read_u32(ip, at);
    let new = u32::from(addr);
    ip[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let c = checksum::update32(read_u16(ip, 10), old, new);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    old
}

/// Folds an address and port change into the L4 checksum at `l4[off]`.
/// `partial`: the field holds the pseudo-header sum only (the port is
/// covered when the sum is completed). A UDP checksum of zero means "none"
/// and stays zero.
fn fix_l4_checksum(
    l4: &mut [u8],
    off: usize,
    udp: bool,
    partial: bool,
    addr: (u32, u32),
    port: (u16, u16),
) {
    let c = read_u16(l4, off);
    let c = if partial {
        // Not complemented: S' = S - old + new, in ones' complement.
        !checksum::update32(!c, addr.0, addr.1)
    } else {
        if udp && c == 0 {
            return;
        }
        let c = checksum::update16(checksum::update32(c, addr.0, addr.1), port.0, port.1);
        if udp && c == 0 { 0xffff } else { c }
    };
    l4[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Rewrites the source or destination address and port of the TCP or UDP
/// IPv4 packet `ip` (IP header first) to `addr:port`, fixing the IP and L4
/// checksums incrementally. `partial` says the L4 checksum is unfinished
/// (CHECKSUM_PARTIAL).
pub fn rewrite(ip: &mut [u8], end: End, addr: Ipv4Addr, port: u16, partial: bool) -> Result<()> {
    let (hl, total, protocol) = {
        let p = Ipv4Packet::new_checked(&*ip)?;
        (p.header_len(), p.total_len(), p.protocol())
    };
    let (csum_at, min) = l4_layout(protocol).ok_or(Error::Malformed)?;
    if total < hl + min {
        return Err(Error::Truncated);
    }
    let old = set_addr(ip, end.addr_at(), addr);
    let l4 = &mut ip[hl..total];
    let old_port = read_u16(l4, end.port_at());
    l4[end.port_at()..end.port_at() + 2].copy_from_slice(&port.to_be_bytes());
    fix_l4_checksum(
        l4,
        csum_at,
        protocol == ip_proto::UDP,
        partial,
        (old, u32::from(addr)),
        (old_port, port),
    );
    Ok(())
}

/// What an ICMP error quotes: the offending packet's protocol, addresses
/// and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// Where the quoted packet sits in an ICMP error.
struct QuoteLayout {
    /// Start of the ICMP message (the outer IP header's length).
    icmp: usize,
    /// End of the ICMP message.
    end: usize,
    /// Start of the quoted IP header and of its L4 header.
    inner: usize,
    inner_l4: usize,
}

fn quote_layout(ip: &[u8]) -> Option<(QuoteLayout, Quoted)> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.protocol() != ip_proto::ICMP || p.is_fragment() {
        return None;
    }
    let icmp = p.header_len();
    let end = p.total_len();
    let msg = &ip[icmp..end];
    // Type, code, checksum, 4 bytes unused/MTU, then the quote.
    if msg.len() < 8 + 20 + 8 {
        return None;
    }
    if !matches!(
        msg[0],
        TYPE_DEST_UNREACH | TYPE_SOURCE_QUENCH | TYPE_TIME_EXCEEDED
    ) {
        return None;
    }
    let q = &msg[8..];
    let ihl = usize::from(q[0] & 0x0f) * 4;
    if q[0] >> 4 != 4 || ihl < 20 || q.len() < ihl + 8 {
        return None;
    }
    // Only a first fragment carries the ports.
    if read_u16(q, 6) & 0x1fff != 0 {
        return None;
    }
    let protocol = q[9];
    l4_layout(protocol)?;
    let quoted = Quoted {
        protocol,
        src: Ipv4Addr::from(read_u32(q, 12)),
        dst: Ipv4Addr::from(read_u32(q, 16)),
        sport: read_u16(q, ihl),
        dport: read_u16(q, ihl + 2),
    };
    let layout = QuoteLayout {
        icmp,
        end,
        inner: icmp + 8,
        inner_l4: icmp + 8 + ihl,
    };
    Some((layout, quoted))
}

/// The TCP or UDP packet an ICMP error (destination unreachable, source
/// quench, time exceeded: the kinds IPVS relates to a connection) is about;
/// `None` for any other packet.
pub fn quoted(ip: &[u8]) -> Option<Quoted> {
    quote_layout(ip).map(|(_, q)| q)
}

/// Translates an ICMP error about a NAT connection, as ip_vs_nat_icmp does:
/// the outer packet's `outer` end and the quoted packet's `inner` end (its
/// address and port) become `addr:port`. Towards the client the outer
/// source and the quoted destination become the VIP:VPORT; towards the real
/// server the outer destination and the quoted source become RIP:RPORT.
/// The quoted packet's checksums are updated when they are quoted, and the
/// ICMP checksum is recomputed.
pub fn translate_icmp(
    ip: &mut [u8],
    outer: End,
    inner: End,
    addr: Ipv4Addr,
    port: u16,
) -> Result<()> {
    let (l, q) = quote_layout(ip).ok_or(Error::Malformed)?;
    set_addr(ip, outer.addr_at(), addr);
    let (csum_at, _) = l4_layout(q.protocol).ok_or(Error::Malformed)?;
    let old = set_addr(&mut ip[l.inner..l.end], inner.addr_at(), addr);
    let l4 = &mut ip[l.inner_l4..l.end];
    let old_port = read_u16(l4, inner.port_at());
    l4[inner.port_at()..inner.port_at() + 2].copy_from_slice(&port.to_be_bytes());
    if l4.len() >= csum_at + 2 {
        fix_l4_checksum(
            l4,
            csum_at,
            q.protocol == ip_proto::UDP,
            false,
            (old, u32::from(addr)),
            (old_port, port),
        );
    }
    let msg = &mut ip[l.icmp..l.end];
    msg[2..4].copy_from_slice(&[0, 0]);
    let c = checksum::finish(checksum::sum(msg));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmp::{IcmpError, emit_error};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const CLIENT: [u8; 4] = [198, 18, 0, 10];
    const VIP: [u8; 4] = [198, 18, 0, 100];
    const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

    fn tcp(payload_len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv4(CLIENT, VIP, 64)
            .tcp(40000, 80, 7, 65000)
            .syn();
        let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        v
    }

    fn udp(payload_len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv4(CLIENT, VIP, 64).udp(40000, 53);
        let payload: Vec<u8> = (0..payload_len).map(|i| (i * 3) as u8).collect();
        let mut v = Vec::new();
        b.write(&mut v, &payload).unwrap();
        v
    }

    /// The addresses, ports and whether etherparse finds every checksum
    /// correct.
    fn check(ip: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, bool) {
        let p = SlicedPacket::from_ip(ip).unwrap();
        let net = match p.net.unwrap() {
            etherparse::NetSlice::Ipv4(v) => v,
            _ => panic!("not IPv4"),
        };
        let h = net.header();
        let ip_ok = h.to_header().calc_header_checksum() == h.header_checksum();
        let (src, dst) = (h.source_addr(), h.destination_addr());
        let payload = net.payload().payload;
        match p.transport.unwrap() {
            TransportSlice::Tcp(t) => {
                let want = t
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), t.payload())
                    .unwrap();
                let _ = payload;
                (
                    src,
                    t.source_port(),
                    dst,
                    t.destination_port(),
                    ip_ok && want == t.checksum(),
                )
            }
            TransportSlice::Udp(u) => {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), u.payload())
                    .unwrap();
                (
                    src,
                    u.source_port(),
                    dst,
                    u.destination_port(),
                    ip_ok && want == u.checksum(),
                )
            }
            _ => panic!("not TCP/UDP"),
        }
    }

    #[test]
    fn destination_rewrite_keeps_every_checksum_valid() {
        for len in [0, 1, 2, 3, 100, 1001] {
            for mut p in [tcp(len), udp(len)] {
                rewrite(&mut p, End::Dst, RIP, 8080, false).unwrap();
                assert_eq!(
                    check(&p),
                    (Ipv4Addr::from(CLIENT), 40000, RIP, 8080, true),
                    "length {len}"
                );
                // And back, as a reply would be.
                rewrite(&mut p, End::Dst, Ipv4Addr::from(VIP), 80, false).unwrap();
                assert!(check(&p).4);
            }
        }
    }

    #[test]
    fn source_rewrite_of_a_reply() {
        let b = PacketBuilder::ipv4(RIP.octets(), CLIENT, 64).tcp(8080, 40000, 9, 100);
        let mut p = Vec::new();
        b.write(&mut p, b"hello").unwrap();
        rewrite(&mut p, End::Src, Ipv4Addr::from(VIP), 80, false).unwrap();
        assert_eq!(
            check(&p),
            (Ipv4Addr::from(VIP), 80, Ipv4Addr::from(CLIENT), 40000, true)
        );
    }

    /// Turns a finished checksum into what a CHECKSUM_PARTIAL sender leaves:
    /// the folded pseudo-header sum, not complemented.
    fn make_partial(p: &mut [u8], at: usize) {
        let len = (p.len() - 20) as u32;
        let proto = p[9];
        let src = Ipv4Addr::from(read_u32(p, 12));
        let dst = Ipv4Addr::from(read_u32(p, 16));
        let s = checksum::fold(checksum::pseudo_header(src, dst, proto, len));
        p[20 + at..22 + at].copy_from_slice(&s.to_be_bytes());
    }

    #[test]
    fn partial_checksums_stay_correct_once_completed() {
        for (mut p, at) in [(tcp(333), 16), (udp(333), 6)] {
            make_partial(&mut p, at);
            rewrite(&mut p, End::Dst, RIP, 8080, true).unwrap();
            // Complete it as the kernel (or uvs before sending) would.
            assert!(crate::dataplane::complete_checksum(&mut p, 20, at));
            assert_eq!(check(&p), (Ipv4Addr::from(CLIENT), 40000, RIP, 8080, true));
        }
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut p = udp(10);
        p[26..28].copy_from_slice(&[0, 0]);
        rewrite(&mut p, End::Dst, RIP, 5353, false).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        assert_eq!(read_u16(&p, 22), 5353);
    }

    #[test]
    fn truncated_and_foreign_packets_are_refused_without_panic() {
        let p = tcp(10);
        for n in 0..p.len() {
            let mut cut = p[..n].to_vec();
            assert!(rewrite(&mut cut, End::Dst, RIP, 1, false).is_err());
            assert!(translate_icmp(&mut cut, End::Src, End::Dst, RIP, 1).is_err());
            assert_eq!(quoted(&cut), None);
        }
        // A packet whose length field leaves no room for the TCP header.
        let mut short = p.clone();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert!(rewrite(&mut short, End::Dst, RIP, 1, false).is_err());
        let mut icmp = Vec::new();
        PacketBuilder::ipv4(CLIENT, VIP, 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, b"ping")
            .unwrap();
        assert!(rewrite(&mut icmp.clone(), End::Dst, RIP, 1, false).is_err());
        assert_eq!(quoted(&icmp), None);
    }

    /// A real server's "port unreachable" about a translated datagram, as
    /// its kernel would build it: from RIP to the client, quoting
    /// client:40000 -> RIP:5353.
    fn port_unreachable(quote: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 600];
        let n = emit_error(
            &mut out,
            RIP,
            Ipv4Addr::from(CLIENT),
            IcmpError::PORT_UNREACHABLE,
            quote,
            20,
        )
        .unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn port_unreachable_from_a_real_server_names_the_vip() {
        let mut sent = udp(4);
        let original = sent.clone();
        rewrite(&mut sent, End::Dst, RIP, 5353, false).unwrap();
        let mut err = port_unreachable(&sent);
        let q = quoted(&err).unwrap();
        assert_eq!(
            q,
            Quoted {
                protocol: ip_proto::UDP,
                src: Ipv4Addr::from(CLIENT),
                sport: 40000,
                dst: RIP,
                dport: 5353,
            }
        );
        translate_icmp(&mut err, End::Src, End::Dst, Ipv4Addr::from(VIP), 53).unwrap();
        let p = Ipv4Packet::new_checked(&err[..]).unwrap();
        assert_eq!(p.src_addr(), Ipv4Addr::from(VIP));
        assert!(p.verify_checksum());
        // The quote is again exactly what the client sent (header and the
        // first 8 bytes, checksums included).
        assert_eq!(&err[28..28 + 28], &original[..28]);
        assert_eq!(checksum::fold(checksum::sum(&err[20..])), 0xffff);
        // etherparse agrees that the ICMP message is well formed.
        let s = SlicedPacket::from_ip(&err).unwrap();
        match s.transport.unwrap() {
            TransportSlice::Icmpv4(i) => {
                assert_eq!(i.icmp_type().calc_checksum(i.payload()), i.checksum())
            }
            _ => panic!("not ICMP"),
        }
    }

    #[test]
    fn only_errors_that_quote_tcp_or_udp_are_related() {
        let sent = udp(4);
        let mut err = port_unreachable(&sent);
        err[20] = 8; // echo request
        assert_eq!(quoted(&err), None);
        err[20] = TYPE_TIME_EXCEEDED;
        assert!(quoted(&err).is_some());
        err[28 + 9] = ip_proto::ICMP; // quoting an ICMP packet
        assert_eq!(quoted(&err), None);
    }
}
