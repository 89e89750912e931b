use super::*;
use crate::wire::icmpv6::{Icmpv6Error, emit_error};
use etherparse::PacketBuilder;

const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
const RIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 0x11);
const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);

fn sock(a: Ipv6Addr, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(a, port, 0, 0)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7) as u8).collect()
}

fn tcp(src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), len: usize) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
        .tcp(ports.0, ports.1, 7, 65000)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &payload(len)).unwrap();
    v
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), len: usize) -> Vec<u8> {
    let b = PacketBuilder::ipv6(src.octets(), dst.octets(), 64).udp(ports.0, ports.1);
    let mut v = Vec::new();
    b.write(&mut v, &payload(len)).unwrap();
    v
}

/// A destination options header (PadN only) put before the upper layer.
fn with_dest_opts(mut p: Vec<u8>) -> Vec<u8> {
    let next = p[6];
    p[6] = ip_proto::DEST_OPTS;
    let len = u16::from_be_bytes([p[4], p[5]]) + 8;
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
    p
}

fn view(p: &mut [u8]) -> Ipv6Packet<&mut [u8]> {
    Ipv6Packet::new_checked(p).unwrap()
}

fn upper(p: &[u8]) -> UpperLayer {
    Ipv6Packet::new_checked(p).unwrap().upper_layer().unwrap()
}

/// Source, source port, destination, destination port, and whether the
/// transport checksum checks over the pseudo-header.
fn check(p: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, bool) {
    let ip = Ipv6Packet::new_checked(p).unwrap();
    let u = ip.upper_layer().unwrap();
    let l4 = ip.upper_payload(&u);
    let ports = Ports::new_checked(l4).unwrap();
    let ok = checksum::verify_v6(ip.src_addr(), ip.dst_addr(), u.protocol, l4);
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    (s, ports.src_port(), d, ports.dst_port(), ok)
}

fn rewrite_at(p: &mut [u8], end: End, to: SocketAddrV6, partial: bool) -> Result<()> {
    let u = upper(p);
    rewrite(&mut view(p), &u, end, to, partial)
}

#[test]
fn both_ways_keep_the_transport_checksum_valid() {
    for len in [0, 1, 3, 100, 1001] {
        let packets = [
            tcp(CLIENT, VIP, (40000, 80), len),
            udp(CLIENT, VIP, (40000, 53), len),
        ];
        for p in packets {
            for mut p in [p.clone(), with_dest_opts(p)] {
                let vport = check(&p).3;
                rewrite_at(&mut p, End::Dst, sock(RIP, 8080), false).unwrap();
                assert_eq!(check(&p), (CLIENT, 40000, RIP, 8080, true), "{len}");
                // The real server's reply, back to the VIP's name.
                let mut reply = p.clone();
                reply[8..24].copy_from_slice(&RIP.octets());
                reply[24..40].copy_from_slice(&CLIENT.octets());
                let u = upper(&reply);
                let l4 = &mut reply[u.offset..];
                l4[..4].copy_from_slice(&[0x1f, 0x90, 0x9c, 0x40]);
                rewrite_at(&mut reply, End::Src, sock(VIP, vport), false).unwrap();
                assert_eq!(check(&reply), (VIP, vport, CLIENT, 40000, true));
            }
        }
    }
}

/// What a CHECKSUM_PARTIAL sender leaves: the pseudo-header sum, folded,
/// not complemented.
fn make_partial(p: &mut [u8], at: usize) {
    let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
    let u = ip.upper_layer().unwrap();
    let len = ip.upper_payload(&u).len() as u32;
    let s = checksum::pseudo_header_v6(ip.src_addr(), ip.dst_addr(), u.protocol, len);
    let o = u.offset + at;
    p[o..o + 2].copy_from_slice(&checksum::fold(s).to_be_bytes());
}

#[test]
fn partial_checksums_stay_correct_once_completed() {
    for (mut p, at) in [
        (tcp(CLIENT, VIP, (40000, 80), 333), 16),
        (udp(CLIENT, VIP, (40000, 53), 333), 6),
    ] {
        make_partial(&mut p, at);
        rewrite_at(&mut p, End::Dst, sock(RIP, 8080), true).unwrap();
        assert!(crate::dataplane::egress::complete_checksum(&mut p, 40, at));
        assert_eq!(check(&p), (CLIENT, 40000, RIP, 8080, true));
    }
}

#[test]
fn foreign_fragmented_and_cut_packets_are_refused_without_panic() {
    let p = tcp(CLIENT, VIP, (40000, 80), 10);
    let u = upper(&p);
    // Shorter than a TCP header.
    for n in 40..60 {
        let mut cut = p[..n].to_vec();
        cut[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
        let before = cut.clone();
        assert!(rewrite(&mut view(&mut cut), &u, End::Dst, sock(RIP, 1), false).is_err());
        assert!(translate_icmp(&mut view(&mut cut), &u, End::Src, End::Dst, sock(RIP, 1)).is_err());
        assert_eq!(cut, before, "nothing changed at {n}");
        assert_eq!(quoted(&cut[40..]), None);
    }
    let mut echo = Vec::new();
    PacketBuilder::ipv6(CLIENT.octets(), VIP.octets(), 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut echo, b"ping")
        .unwrap();
    let u = upper(&echo);
    assert!(rewrite(&mut view(&mut echo), &u, End::Dst, sock(RIP, 1), false).is_err());
    assert_eq!(quoted(&echo[40..]), None);
    let frag = UpperLayer {
        frag: Some(crate::wire::ipv6::FragInfo {
            offset: 0,
            more: true,
            ident: 1,
        }),
        ..upper(&p)
    };
    let mut whole = p.clone();
    assert!(rewrite(&mut view(&mut whole), &frag, End::Dst, sock(RIP, 1), false).is_err());
}

/// An ICMPv6 error about `offending`, from `src` to `dst`.
fn error(src: Ipv6Addr, dst: Ipv6Addr, e: Icmpv6Error, offending: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 1400];
    let n = emit_error(&mut out, src, dst, e, offending).unwrap();
    out.truncate(n);
    out
}

fn icmp_ok(p: &[u8]) -> bool {
    let ip = Ipv6Packet::new_checked(p).unwrap();
    let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    msg.verify_checksum(ip.src_addr(), ip.dst_addr())
}

#[test]
fn a_real_servers_port_unreachable_names_the_vip() {
    let original = udp(CLIENT, VIP, (40000, 53), 4);
    let mut sent = original.clone();
    rewrite_at(&mut sent, End::Dst, sock(RIP, 5353), false).unwrap();
    let mut err = error(RIP, CLIENT, Icmpv6Error::PORT_UNREACHABLE, &sent);
    let q = quoted(&err[40..]).unwrap();
    let want = Quoted {
        protocol: ip_proto::UDP,
        src: CLIENT,
        sport: 40000,
        dst: RIP,
        dport: 5353,
    };
    assert_eq!(q, want);
    let u = upper(&err);
    translate_icmp(&mut view(&mut err), &u, End::Src, End::Dst, sock(VIP, 53)).unwrap();
    assert_eq!(Ipv6Packet::new_checked(&err[..]).unwrap().src_addr(), VIP);
    assert!(icmp_ok(&err));
    // The quote is again exactly what the client sent.
    assert_eq!(&err[48..], &original[..]);
}

#[test]
fn a_routers_packet_too_big_reaches_the_real_server_translated() {
    // The reply as the real server sent it, and as it left the director.
    let sent = tcp(RIP, CLIENT, (8080, 40000), 1300);
    let mut out = sent.clone();
    rewrite_at(&mut out, End::Src, sock(VIP, 80), false).unwrap();
    let ptb = Icmpv6Error::PacketTooBig { mtu: 1400 };
    let mut err = error(ROUTER, VIP, ptb, &out);
    assert_eq!(err.len(), 1280, "the quote is cut at the minimum MTU");
    let u = upper(&err);
    translate_icmp(&mut view(&mut err), &u, End::Dst, End::Src, sock(RIP, 8080)).unwrap();
    let ip = Ipv6Packet::new_checked(&err[..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (ROUTER, RIP));
    assert!(icmp_ok(&err));
    assert_eq!(&err[4 + 40..8 + 40], &1400u32.to_be_bytes());
    // The quoted header and ports are the real server's own again (the
    // TCP checksum covers bytes the quote cut off: it is not checked).
    assert_eq!(&err[48..48 + 40 + 16], &sent[..40 + 16]);
}

#[test]
fn only_related_errors_with_a_good_checksum_are_translated() {
    let sent = udp(CLIENT, RIP, (40000, 5353), 4);
    let mut err = error(RIP, CLIENT, Icmpv6Error::PORT_UNREACHABLE, &sent);
    let u = upper(&err);
    let to = sock(VIP, 53);
    for (t, related) in [(1, true), (2, true), (3, true), (4, false), (128, false)] {
        let mut e = err.clone();
        e[40] = t;
        assert_eq!(quoted(&e[40..]).is_some(), related, "type {t}");
    }
    // A damaged error is not laundered by a fresh checksum.
    let mut bad = err.clone();
    *bad.last_mut().unwrap() ^= 1;
    let r = translate_icmp(&mut view(&mut bad), &u, End::Src, End::Dst, to);
    assert_eq!(r, Err(Error::Malformed));
    // Quoting an ICMPv6 packet: not related.
    err[48 + 6] = ip_proto::ICMPV6;
    assert_eq!(quoted(&err[40..]), None);
}

#[test]
fn garbage_quotes_never_panic() {
    let sent = tcp(CLIENT, RIP, (40000, 8080), 64);
    let err = error(RIP, CLIENT, Icmpv6Error::HOP_LIMIT_EXCEEDED, &sent);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..4000 {
        let mut e = err.clone();
        // Damage a few bytes of the quote (its header, extension chain,
        // ports) and maybe cut it short.
        for _ in 0..1 + round % 4 {
            let at = 48 + (next() as usize % (e.len() - 48));
            e[at] = next() as u8;
        }
        if round % 3 == 0 {
            let n = 40 + next() as usize % (e.len() - 40);
            e.truncate(n);
            let len = (n - 40) as u16;
            e[4..6].copy_from_slice(&len.to_be_bytes());
        }
        let _ = quoted(&e[40..]);
        let u = upper(&e);
        let to = sock(VIP, 80);
        let _ = translate_icmp(&mut view(&mut e), &u, End::Src, End::Dst, to);
    }
}
