//! NAT translation (LVS `-m`): one end of a TCP or UDP packet, and of the
//! packet an ICMP error quotes, is rewritten in place. Checksums are
//! updated incrementally (RFC 1624) rather than recomputed, so the cost does
//! not depend on the payload size, and frames whose L4 checksum the sender
//! left for offload (CHECKSUM_PARTIAL) stay correct: their checksum field
//! holds only the pseudo-header sum, so only the address change is folded
//! in, exactly as IPVS's `tcp_partial_csum_update` does.

use super::conn::ReplyKey;
use crate::lvs::addr::Addr;
use crate::lvs::conn::ConnKey;
use crate::lvs::service::Protocol;
use crate::wire::End;
use crate::wire::icmp::Icmpv4Packet;
use crate::wire::ports::{self, Ports};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::{Error, Ipv4Packet, Result, checksum, ip_proto};
use std::net::{Ipv4Addr, SocketAddrV4};

/// The L4 checksum of a TCP or UDP header (`None`: another protocol, or
/// not in the bytes at hand, as in a quoted TCP header).
fn l4_checksum(l4: &[u8], protocol: u8) -> Option<u16> {
    match protocol {
        ip_proto::TCP if l4.len() >= tcp::CHECKSUM_OFFSET + 2 => {
            Some(TcpPacket::new_unchecked(l4).checksum())
        }
        ip_proto::UDP if l4.len() >= udp::HEADER_LEN => {
            Some(UdpPacket::new_unchecked(l4).checksum())
        }
        _ => None,
    }
}

fn set_l4_checksum(l4: &mut [u8], protocol: u8, c: u16) {
    match protocol {
        ip_proto::TCP => TcpPacket::new_unchecked(l4).set_checksum(c),
        _ => UdpPacket::new_unchecked(l4).set_checksum(c),
    }
}

/// The smallest header of a protocol NAT translates.
pub(super) fn min_header(protocol: u8) -> Option<usize> {
    match protocol {
        ip_proto::TCP => Some(tcp::HEADER_LEN),
        ip_proto::UDP => Some(udp::HEADER_LEN),
        _ => None,
    }
}

/// Folds an address and port change into the L4 checksum of `l4`; `addr`
/// folds the address change (of either family) into a checksum.
/// `partial`: the field holds the pseudo-header sum only (the port is
/// covered when the sum is completed). A UDP checksum of zero means "none"
/// and stays zero.
pub(super) fn fix_l4_checksum(
    l4: &mut [u8],
    protocol: u8,
    partial: bool,
    addr: impl Fn(u16) -> u16,
    port: (u16, u16),
) {
    let Some(c) = l4_checksum(l4, protocol) else {
        return;
    };
    let udp = protocol == ip_proto::UDP;
    let c = if partial {
        // Not complemented: S' = S - old + new, in ones' complement.
        !addr(!c)
    } else {
        if udp && c == 0 {
            return;
        }
        let c = checksum::update16(addr(c), port.0, port.1);
        if udp && c == 0 { 0xffff } else { c }
    };
    set_l4_checksum(l4, protocol, c);
}

/// Rewrites the source or destination address and port of a TCP or UDP
/// IPv4 packet to `to`, fixing the IP and L4 checksums incrementally.
/// `partial` says the L4 checksum is unfinished (CHECKSUM_PARTIAL).
pub fn rewrite<T>(ip: &mut Ipv4Packet<T>, end: End, to: SocketAddrV4, partial: bool) -> Result<()>
where
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let min = min_header(ip.protocol()).ok_or(Error::Malformed)?;
    if ip.payload().len() < min {
        return Err(Error::Truncated);
    }
    rewrite_end(ip, end, to, partial)
}

/// One end's address and port of a packet (or of a quoted packet, whose
/// L4 header may be cut after the ports) becomes `to`; the IP checksum
/// and, where present, the L4 checksum follow.
fn rewrite_end<T>(ip: &mut Ipv4Packet<T>, end: End, to: SocketAddrV4, partial: bool) -> Result<()>
where
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let protocol = ip.protocol();
    let old = ip.replace_addr(end, *to.ip());
    let l4 = ip.payload_mut();
    let old_port = Ports::new_checked(&mut *l4)?.replace_port(end, to.port());
    let addr = |c| checksum::update32(c, u32::from(old), u32::from(*to.ip()));
    fix_l4_checksum(l4, protocol, partial, addr, (old_port, to.port()));
    Ok(())
}

/// What an ICMP or ICMPv6 error quotes: the offending packet's protocol,
/// addresses and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<A = Ipv4Addr> {
    pub protocol: u8,
    pub src: A,
    pub sport: u16,
    pub dst: A,
    pub dport: u16,
}

impl<A: Addr> Quoted<A> {
    /// The connection of a quoted packet that a VIP sent to a client.
    pub fn vip_conn(&self, protocol: Protocol) -> ConnKey<A> {
        ConnKey {
            protocol,
            caddr: self.dst,
            cport: self.dport,
            vaddr: self.src,
            vport: self.sport,
        }
    }

    /// The reply 5-tuple of the NAT connection of a quoted packet that a
    /// client sent to a real server (translated).
    pub fn reply_key(&self, protocol: Protocol) -> ReplyKey<A> {
        ReplyKey::new(protocol, (self.dst, self.dport), (self.src, self.sport))
    }
}

/// The quoted packet of an ICMP error IPVS relates to a connection: an
/// unfragmented ICMP error quoting an IPv4 header and at least 8 bytes of
/// a first TCP or UDP fragment.
fn quoted_packet(icmp: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    let msg = Icmpv4Packet::new_checked(icmp).ok()?;
    if !msg.is_error() {
        return None;
    }
    let q = Ipv4Packet::new_quoted(msg.into_data()).ok()?;
    // Only a first fragment carries the ports.
    if q.frag_offset() != 0 || q.payload().len() < ports::LEN {
        return None;
    }
    min_header(q.protocol())?;
    Some(q)
}

/// The TCP or UDP packet an ICMP error (destination unreachable, source
/// quench, time exceeded: the kinds IPVS relates to a connection) is about;
/// `None` for any other packet.
pub fn quoted<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Option<Quoted> {
    if p.protocol() != ip_proto::ICMP || p.is_fragment() {
        return None;
    }
    let q = quoted_packet(p.payload())?;
    let ports = Ports::new_checked(q.payload()).ok()?;
    Some(Quoted {
        protocol: q.protocol(),
        src: q.src_addr(),
        dst: q.dst_addr(),
        sport: ports.src_port(),
        dport: ports.dst_port(),
    })
}

/// Translates an ICMP error about a NAT connection, as ip_vs_nat_icmp does:
/// the outer packet's `outer` end and the quoted packet's `inner` end (its
/// address and port) become `to`. Towards the client the outer
/// source and the quoted destination become the VIP:VPORT; towards the real
/// server the outer destination and the quoted source become RIP:RPORT.
/// The quoted packet's checksums are updated when they are quoted, and the
/// ICMP checksum is recomputed.
pub fn translate_icmp<T>(
    ip: &mut Ipv4Packet<T>,
    outer: End,
    inner: End,
    to: SocketAddrV4,
) -> Result<()>
where
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    if ip.protocol() != ip_proto::ICMP || ip.is_fragment() {
        return Err(Error::Malformed);
    }
    quoted_packet(ip.payload()).ok_or(Error::Malformed)?;
    ip.replace_addr(outer, *to.ip());
    let mut msg = Icmpv4Packet::new_unchecked(ip.payload_mut());
    let mut quote = Ipv4Packet::new_quoted(msg.data_mut())?;
    rewrite_end(&mut quote, inner, to, false)?;
    msg.fill_checksum();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmp::{IcmpError, TYPE_TIME_EXCEEDED, emit_error};
    use crate::wire::{read_u16, read_u32};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const CLIENT: [u8; 4] = [198, 18, 0, 10];
    const VIP: [u8; 4] = [198, 18, 0, 100];
    const RIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

    fn sock(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(addr, port)
    }

    fn vip(port: u16) -> SocketAddrV4 {
        sock(Ipv4Addr::from(VIP), port)
    }

    fn quoted_bytes(ip: &[u8]) -> Option<Quoted> {
        quoted(&Ipv4Packet::new_checked(ip).ok()?)
    }

    /// `f` on the packet if it passes the view's check.
    fn checked(
        b: &mut [u8],
        f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>) -> Result<()>,
    ) -> Result<()> {
        f(&mut Ipv4Packet::new_checked(b)?)
    }

    fn view(p: &mut [u8]) -> Ipv4Packet<&mut [u8]> {
        Ipv4Packet::new_checked(p).unwrap()
    }

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
                rewrite(&mut view(&mut p), End::Dst, sock(RIP, 8080), false).unwrap();
                assert_eq!(
                    check(&p),
                    (Ipv4Addr::from(CLIENT), 40000, RIP, 8080, true),
                    "length {len}"
                );
                // And back, as a reply would be.
                rewrite(&mut view(&mut p), End::Dst, vip(80), false).unwrap();
                assert!(check(&p).4);
            }
        }
    }

    #[test]
    fn source_rewrite_of_a_reply() {
        let b = PacketBuilder::ipv4(RIP.octets(), CLIENT, 64).tcp(8080, 40000, 9, 100);
        let mut p = Vec::new();
        b.write(&mut p, b"hello").unwrap();
        rewrite(&mut view(&mut p), End::Src, vip(80), false).unwrap();
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
            rewrite(&mut view(&mut p), End::Dst, sock(RIP, 8080), true).unwrap();
            // Complete it as the kernel (or uvs before sending) would.
            assert!(crate::dataplane::egress::complete_checksum(&mut p, 20, at));
            assert_eq!(check(&p), (Ipv4Addr::from(CLIENT), 40000, RIP, 8080, true));
        }
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut p = udp(10);
        p[26..28].copy_from_slice(&[0, 0]);
        rewrite(&mut view(&mut p), End::Dst, sock(RIP, 5353), false).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        assert_eq!(read_u16(&p, 22), 5353);
    }

    #[test]
    fn truncated_and_foreign_packets_are_refused_without_panic() {
        let p = tcp(10);
        for n in 0..p.len() {
            let mut cut = p[..n].to_vec();
            assert!(checked(&mut cut, |p| rewrite(p, End::Dst, sock(RIP, 1), false)).is_err());
            assert!(
                checked(&mut cut, |p| translate_icmp(
                    p,
                    End::Src,
                    End::Dst,
                    sock(RIP, 1)
                ))
                .is_err()
            );
            assert_eq!(quoted_bytes(&cut), None);
        }
        // A packet whose length field leaves no room for the TCP header.
        let mut short = p.clone();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert!(checked(&mut short, |p| rewrite(p, End::Dst, sock(RIP, 1), false)).is_err());
        let mut icmp = Vec::new();
        PacketBuilder::ipv4(CLIENT, VIP, 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, b"ping")
            .unwrap();
        assert!(rewrite(&mut view(&mut icmp.clone()), End::Dst, sock(RIP, 1), false).is_err());
        assert_eq!(quoted_bytes(&icmp), None);
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
        rewrite(&mut view(&mut sent), End::Dst, sock(RIP, 5353), false).unwrap();
        let mut err = port_unreachable(&sent);
        let q = quoted_bytes(&err).unwrap();
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
        translate_icmp(&mut view(&mut err), End::Src, End::Dst, vip(53)).unwrap();
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
        assert_eq!(quoted_bytes(&err), None);
        err[20] = TYPE_TIME_EXCEEDED;
        assert!(quoted_bytes(&err).is_some());
        err[28 + 9] = ip_proto::ICMP; // quoting an ICMP packet
        assert_eq!(quoted_bytes(&err), None);
    }
}
