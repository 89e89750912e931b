//! NAT (`-m`) through the data plane on two in-memory links: clients on
//! link 0, real servers on link 1 behind the director. Real frames in and
//! out, decoded and checksum-verified with etherparse.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use uvs::control::proto::Op;
use uvs::dataplane::LinkParams;
use uvs::host::Prefix;
use uvs::io::{Gso, RxMeta};
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::{LinkRoute, NextHop};
use uvs::rig::{CL_MAC, VIP, dest, service, svc};
use uvs::wire::{MacAddr, checksum};

const DIR0: [u8; 6] = uvs::rig::DIR_MAC;
const DIR1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const FAR_CLIENT: [u8; 4] = [198, 19, 7, 7];
const RIP1: [u8; 4] = [198, 18, 1, 11];
const RIP2: [u8; 4] = [198, 18, 1, 12];

fn rs_mac(ip: Ipv4Addr) -> MacAddr {
    MacAddr([2, 0, 0, 0, 2, ip.octets()[3]])
}

/// NAT real servers are behind link 1.
fn server_hop(ip: Ipv4Addr, _: Forward) -> NextHop {
    NextHop {
        link: 1,
        mac: rs_mac(ip),
    }
}

fn nat_dest(addr: [u8; 4], port: u16) -> uvs::control::proto::DestSpec {
    dest(addr.into(), port, Forward::Masq, 1)
}

fn nat_ops() -> Vec<Op> {
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "rr",
        &[nat_dest(RIP1, 8080), nat_dest(RIP2, 8080)],
    );
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "rr",
        &[nat_dest(RIP1, 5353)],
    ));
    ops
}

/// The director's two links: clients (MTU 1500) and real servers.
fn links(server_mtu: u32) -> Vec<LinkParams> {
    let mut l = uvs::rig::one_link();
    l.push(LinkParams {
        mac: MacAddr(DIR1),
        mtu: server_mtu,
        addr: Ipv4Addr::new(198, 18, 1, 1),
    });
    l
}

/// The director's routes: its client subnet on link 0, everything else
/// via a router there.
fn routes() -> Vec<LinkRoute> {
    vec![
        LinkRoute {
            dst: "198.18.0.0/24".parse().unwrap(),
            link: 0,
            gateway_mac: None,
        },
        LinkRoute {
            dst: Prefix::DEFAULT,
            link: 0,
            gateway_mac: Some(MacAddr(ROUTER_MAC)),
        },
    ]
}

struct Rig(uvs::rig::Rig);

impl std::ops::Deref for Rig {
    type Target = uvs::rig::Rig;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with_links(links(1500))
    }

    fn with_links(links: Vec<LinkParams>) -> Rig {
        let mut r = uvs::rig::Rig::build(links, server_hop, routes(), &nat_ops());
        r.io.take_sent();
        Rig(r)
    }

    /// Feeds one frame on `link`; what was sent, with links.
    fn feed(&mut self, frame: Vec<u8>, link: u8, meta: RxMeta) -> Vec<(u8, Vec<u8>)> {
        self.0.feed_on(frame, link, meta)
    }

    /// A connection from CLIENT:`cport` opened with a SYN: the client's
    /// end and the real server it went to.
    fn connect(&mut self, cport: u16) -> (([u8; 4], u16), [u8; 4]) {
        let syn = self.syn(cport);
        ((CLIENT, cport), rip_of(&seen(&syn)))
    }

    /// A client's SYN from CLIENT:`cport` to VIP:80; the one frame sent.
    fn syn(&mut self, cport: u16) -> Vec<u8> {
        let f = tcp_frame((CL_MAC, DIR0), (CLIENT, cport), (VIP, 80), "S", b"");
        let mut out = self.feed(f, 0, RxMeta::default());
        assert_eq!(out.len(), 1);
        out.remove(0).1
    }
}

fn tcp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 64000);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => panic!("flag {f}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp_frame(macs: ([u8; 6], [u8; 6]), src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, b"NAME")
        .unwrap();
    v
}

/// Decodes a sent frame: MACs, addresses and ports, TTL, and whether the
/// IP and L4 checksums are both right.
#[derive(Debug, PartialEq)]
struct Seen {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    checksums_ok: bool,
}

fn seen(f: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    let ip_ok = h.header_checksum == h.calc_header_checksum();
    let (sp, dp, l4_ok) = match p.transport.unwrap() {
        TransportSlice::Tcp(t) => (
            t.source_port(),
            t.destination_port(),
            t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap() == t.checksum(),
        ),
        TransportSlice::Udp(u) => (
            u.source_port(),
            u.destination_port(),
            u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap() == u.checksum(),
        ),
        _ => panic!("not TCP/UDP"),
    };
    Seen {
        dst_mac: f[0..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        src: (h.source.into(), sp),
        dst: (h.destination.into(), dp),
        ttl: h.time_to_live,
        checksums_ok: ip_ok && l4_ok,
    }
}

fn rip_of(s: &Seen) -> [u8; 4] {
    s.dst.0.octets()
}

/// A TCP segment from real server `rip`:8080 to client `c`, as it arrives
/// on the director's server link.
fn from_rip(rip: [u8; 4], c: ([u8; 4], u16), flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp_frame((rs_mac(rip.into()).0, DIR1), (rip, 8080), c, flags, payload)
}

#[test]
fn tcp_is_translated_both_ways_and_tracks_state_from_both() {
    let mut r = Rig::new();
    let c = (CLIENT, 40000);
    let out = r.feed(
        tcp_frame((CL_MAC, DIR0), c, (VIP, 80), "S", b""),
        0,
        RxMeta::default(),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1, "to the real servers' link");
    let s = seen(&out[0].1);
    let rip = rip_of(&s);
    assert_eq!(
        s,
        Seen {
            dst_mac: rs_mac(rip.into()).0,
            src_mac: DIR1,
            src: (CLIENT.into(), 40000),
            dst: (rip.into(), 8080),
            ttl: 63,
            checksums_ok: true,
        },
        "the client's address stays; VIP:80 becomes RIP:8080"
    );
    assert_eq!(r.dp.conn_list()[0].state, "SYN_RECV");
    // The SYN-ACK from the real server comes back as from the VIP.
    let out = r.feed(from_rip(rip, c, "SA", b""), 1, RxMeta::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0, "back on the clients' link");
    assert_eq!(
        seen(&out[0].1),
        Seen {
            dst_mac: CL_MAC,
            src_mac: DIR0,
            src: (VIP.into(), 80),
            dst: (CLIENT.into(), 40000),
            ttl: 63,
            checksums_ok: true,
        }
    );
    r.feed(
        tcp_frame((CL_MAC, DIR0), c, (VIP, 80), "A", b"GET"),
        0,
        RxMeta::default(),
    );
    assert_eq!(r.dp.conn_list()[0].state, "ESTABLISHED");
    // Client closes first: INPUT fin is CLOSE_WAIT, the server's FIN then
    // TIME_WAIT (what IPVS shows for NAT; DR would say FIN_WAIT).
    r.feed(
        tcp_frame((CL_MAC, DIR0), c, (VIP, 80), "FA", b""),
        0,
        RxMeta::default(),
    );
    assert_eq!(r.dp.conn_list()[0].state, "CLOSE_WAIT");
    r.feed(from_rip(rip, c, "FA", b""), 1, RxMeta::default());
    assert_eq!(r.dp.conn_list()[0].state, "TIME_WAIT");
    // -L --stats: the replies are counted as OutPkts.
    let snap = r.model.snapshot();
    assert_eq!(snap.services[0].stats.inpkts, 3);
    assert_eq!(snap.services[0].stats.outpkts, 2);
    assert_eq!(r.counter("nat_replies"), 2);
}

#[test]
fn udp_port_mapping_and_a_second_client_port_is_a_second_connection() {
    let mut r = Rig::new();
    for sport in [5000, 5001] {
        let out = r.feed(
            udp_frame((CL_MAC, DIR0), (CLIENT, sport), (VIP, 53)),
            0,
            RxMeta::default(),
        );
        let s = seen(&out[0].1);
        assert_eq!(s.dst, (RIP1.into(), 5353));
        assert!(s.checksums_ok);
        let out = r.feed(
            udp_frame((rs_mac(RIP1.into()).0, DIR1), (RIP1, 5353), (CLIENT, sport)),
            1,
            RxMeta::default(),
        );
        let s = seen(&out[0].1);
        assert_eq!((s.src, s.dst), ((VIP.into(), 53), (CLIENT.into(), sport)));
        assert!(s.checksums_ok);
    }
    assert_eq!(r.dp.conn_count(), 2);
}

#[test]
fn replies_that_match_no_connection_are_left_to_the_kernel() {
    let mut r = Rig::new();
    // No connection yet: a "reply" from a real server passes untouched.
    let out = r.feed(
        udp_frame((rs_mac(RIP1.into()).0, DIR1), (RIP1, 5353), (CLIENT, 5000)),
        1,
        RxMeta::default(),
    );
    assert!(out.is_empty());
    r.feed(
        udp_frame((CL_MAC, DIR0), (CLIENT, 5000), (VIP, 53)),
        0,
        RxMeta::default(),
    );
    // The wrong real-server port, or another client port: still not ours.
    for (rport, cport) in [(5354, 5000), (5353, 5001)] {
        let out = r.feed(
            udp_frame(
                (rs_mac(RIP1.into()).0, DIR1),
                (RIP1, rport),
                (CLIENT, cport),
            ),
            1,
            RxMeta::default(),
        );
        assert!(out.is_empty(), "{rport} {cport}");
    }
    assert_eq!(r.counter("nat_replies"), 0);
}

#[test]
fn a_client_behind_a_router_is_answered_through_the_routes_gateway() {
    let mut r = Rig::new();
    // The request arrives from some other MAC; the kernel's route (default
    // via the router) decides where the reply goes.
    let other = [2, 0, 0, 0, 0, 99];
    let c = (FAR_CLIENT, 41000);
    let out = r.feed(
        tcp_frame((other, DIR0), c, (VIP, 80), "S", b""),
        0,
        RxMeta::default(),
    );
    let rip = rip_of(&seen(&out[0].1));
    let out = r.feed(from_rip(rip, c, "SA", b""), 1, RxMeta::default());
    assert_eq!(out[0].0, 0);
    assert_eq!(seen(&out[0].1).dst_mac, ROUTER_MAC);
}

/// Rewrites the L4 checksum of `frame` to what a CHECKSUM_PARTIAL sender
/// leaves there (the pseudo-header sum only) and returns the metadata.
fn make_partial(frame: &mut [u8]) -> RxMeta {
    let proto = frame[23];
    let at = if proto == 6 { 16 } else { 6 };
    let len = (frame.len() - 34) as u32;
    let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    let s = checksum::fold(checksum::pseudo_header(src, dst, proto, len));
    frame[34 + at..36 + at].copy_from_slice(&s.to_be_bytes());
    RxMeta {
        csum_partial: Some((34, at as u16)),
        ..RxMeta::default()
    }
}

#[test]
fn unfinished_checksums_are_correct_on_the_wire_in_both_directions() {
    let mut r = Rig::new();
    let c = (CLIENT, 40001);
    let mut f = tcp_frame((CL_MAC, DIR0), c, (VIP, 80), "S", b"hello");
    let meta = make_partial(&mut f);
    let out = r.feed(f, 0, meta);
    let s = seen(&out[0].1);
    assert!(s.checksums_ok, "{s:?}");
    let rip = rip_of(&s);
    let mut f = tcp_frame(
        (rs_mac(rip.into()).0, DIR1),
        (rip, 8080),
        c,
        "SA",
        b"world!",
    );
    let meta = make_partial(&mut f);
    let out = r.feed(f, 1, meta);
    let s = seen(&out[0].1);
    assert_eq!(s.src, (VIP.into(), 80));
    assert!(s.checksums_ok, "{s:?}");
    assert!(r.counter("csum_completed") >= 2);
}

#[test]
fn a_reply_super_frame_is_cut_into_translated_segments() {
    let mut r = Rig::new();
    let (c, rip) = r.connect(40002);
    let body: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    let mut f = from_rip(rip, c, "A", &body);
    let meta = RxMeta {
        gso: Some(Gso {
            tcpv4: true,
            size: 1448,
        }),
        ..make_partial(&mut f)
    };
    let out = r.feed(f, 1, meta);
    assert_eq!(out.len(), 20000usize.div_ceil(1448));
    let mut got = Vec::new();
    for (link, seg) in &out {
        assert_eq!(*link, 0);
        assert!(seg.len() <= 1514);
        let s = seen(seg);
        assert_eq!((s.src, s.dst), ((VIP.into(), 80), (CLIENT.into(), 40002)));
        assert!(s.checksums_ok);
        got.extend_from_slice(&seg[54..]);
    }
    assert_eq!(got, body);
}

#[test]
fn a_real_servers_port_unreachable_reaches_the_client_from_the_vip() {
    let mut r = Rig::new();
    let sent = udp_frame((CL_MAC, DIR0), (CLIENT, 5000), (VIP, 53));
    let out = r.feed(sent.clone(), 0, RxMeta::default());
    let translated = out[0].1.clone();
    // What the real server's kernel sends back: ICMP port unreachable from
    // the RIP quoting the translated datagram.
    let quote = &translated[14..];
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(rs_mac(RIP1.into()).0, DIR1)
        .ipv4(RIP1, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut icmp, quote)
        .unwrap();
    let out = r.feed(icmp, 1, RxMeta::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    let f = &out[0].1;
    assert_eq!(&f[0..6], &CL_MAC);
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP, "from the VIP, not the RIP");
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type().calc_checksum(i.payload()), i.checksum());
    // The quote names VIP:53 again, with the client's original checksums
    // (TTL aside, which the director decremented on the way in).
    let q = i.payload();
    assert_eq!(&q[16..20], &VIP);
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), 53);
    assert_eq!(
        &q[20..28],
        &sent[34..42],
        "UDP header as the client sent it"
    );
    assert_eq!(r.counter("icmp_related"), 1);
}

#[test]
fn frag_needed_for_the_vip_goes_to_the_real_server_translated() {
    let mut r = Rig::new();
    let (c, rip) = r.connect(40003);
    let reply = r.feed(from_rip(rip, c, "SA", b""), 1, RxMeta::default());
    // A router on the client's side cannot pass the (translated) reply on.
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, DIR0)
        .ipv4([198, 18, 0, 1], VIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut icmp, &reply[0].1[14..14 + 28])
        .unwrap();
    let out = r.feed(icmp, 0, RxMeta::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    let f = &out[0].1;
    assert_eq!(&f[0..6], &rs_mac(rip.into()).0);
    assert_eq!(&f[30..34], &rip, "outer destination is the RIP");
    // Quoted source is RIP:8080 again, as the real server sent it.
    assert_eq!(&f[42 + 12..42 + 16], &rip);
    assert_eq!(u16::from_be_bytes([f[62], f[63]]), 8080);
    assert_eq!(checksum::fold(checksum::sum(&f[34..])), 0xffff);
    assert_eq!(checksum::fold(checksum::sum(&f[42..62])), 0xffff);
}

#[test]
fn garbage_from_either_side_never_panics_with_nat_connections() {
    let mut r = Rig::new();
    let c = (CLIENT, 40004);
    let syn = r.syn(c.1);
    let rip = rip_of(&seen(&syn));
    let bases = [from_rip(rip, c, "A", b"data"), {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(ROUTER_MAC, DIR0)
            .ipv4([198, 18, 0, 1], VIP, 64)
            .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
                etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
            ))
            .write(&mut v, &syn[14..14 + 28])
            .unwrap();
        v
    }];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..20000u32 {
        let f = crate::mangle(&bases[(i % 2) as usize], &mut x, 0, 3);
        let meta = RxMeta {
            csum_partial: (i % 3 == 0).then_some(((x >> 16) as u16 % 80, (x >> 24) as u16 % 40)),
            link: (x >> 50) as u8 % 3,
            ..RxMeta::default()
        };
        r.io.push_with(f, meta);
        r.poll();
    }
    // Every frame that did leave is a well-formed Ethernet frame on a
    // real link.
    assert!(r.io.tx_links.iter().all(|l| *l < 2));
}

#[test]
fn frag_needed_from_a_router_on_the_server_side_comes_from_the_vip() {
    let mut r = Rig::new();
    let c = (CLIENT, 40005);
    let translated = r.syn(c.1);
    // A router between the director and the real server (not the real
    // server itself) cannot pass the translated segment on.
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 2, 254], DIR1)
        .ipv4([198, 18, 1, 254], CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1280 },
        ))
        .write(&mut icmp, &translated[14..14 + 28])
        .unwrap();
    let out = r.feed(icmp, 1, RxMeta::default());
    assert_eq!(out.len(), 1);
    let (link, f) = &out[0];
    assert_eq!(*link, 0);
    assert_eq!(
        &f[26..30],
        &VIP,
        "outer source becomes the VIP, as IPVS does"
    );
    assert_eq!(&f[30..34], &CLIENT);
    // "Fragmentation needed" with its MTU kept, about client -> VIP:80.
    assert_eq!((f[34], f[35]), (3, 4));
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1280);
    assert_eq!(&f[42 + 16..42 + 20], &VIP);
    assert_eq!(u16::from_be_bytes([f[64], f[65]]), 80);
    assert_eq!(checksum::fold(checksum::sum(&f[34..])), 0xffff);
}

#[test]
fn a_datagram_too_big_for_the_server_link_gets_frag_needed_from_the_vip() {
    // Make the server side's MTU smaller than the client side's.
    let mut r = Rig::with_links(links(1400));
    let mut big = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR0)
        .ipv4(CLIENT, VIP, 64)
        .udp(5000, 53)
        .write(&mut big, &[7u8; 1472])
        .unwrap();
    big[20] |= 0x40; // DF
    let c = checksum::finish(checksum::sum(&{
        let mut h = big[14..34].to_vec();
        h[10..12].copy_from_slice(&[0, 0]);
        h
    }));
    big[24..26].copy_from_slice(&c.to_be_bytes());
    let out = r.feed(big, 0, RxMeta::default());
    assert_eq!(out.len(), 1);
    let (link, f) = &out[0];
    assert_eq!(*link, 0, "back to the client");
    assert_eq!(&f[26..30], &VIP);
    assert_eq!((f[34], f[35]), (3, 4));
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1400);
    // The quote is what the client sent (VIP:53), not the translation.
    assert_eq!(&f[42 + 16..42 + 20], &VIP);
    assert_eq!(r.counter("frag_needed"), 1);
}

#[test]
fn arp_for_the_vip_is_answered_on_the_link_it_was_asked_on() {
    let mut r = Rig::new();
    for (link, mac) in [(0u8, DIR0), (1, DIR1)] {
        let asker = [2, 0, 0, 0, 9, link];
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&asker);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&asker);
        f.extend_from_slice(&[198, 18, link, 50]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&VIP);
        let meta = RxMeta {
            pkt_type: uvs::io::PacketType::Broadcast,
            ..RxMeta::default()
        };
        let out = r.feed(f, link, meta);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, link);
        let reply = &out[0].1;
        assert_eq!(&reply[0..6], &asker);
        assert_eq!(&reply[6..12], &mac, "the link's own MAC");
        assert_eq!(&reply[22..28], &mac, "ARP sender hardware address");
    }
    // A frame claiming a link the director does not have is refused.
    let f = udp_frame((CL_MAC, DIR0), (CLIENT, 5000), (VIP, 53));
    assert!(r.feed(f, 7, RxMeta::default()).is_empty());
    assert_eq!(r.counter("malformed"), 1);
}
