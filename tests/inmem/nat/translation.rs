//! What NAT rewrites: TCP and UDP both ways with their state, port
//! mapping, replies it does not own, clients behind a router, unfinished
//! checksums and super-frames, garbage, ARP on either link.

use super::{
    CLIENT, DIR0, DIR1, FAR_CLIENT, RIP1, ROUTER_MAC, Rig, Seen, from_rip, rip_of, rs_mac, seen,
    tcp_frame, udp_frame,
};
use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use uvs::io::Gso;
use uvs::io::RxMeta;
use uvs::rig::CL_MAC;
use uvs::rig::VIP;
use uvs::wire::checksum;

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
            tcpv6: false,
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
