//! The data plane driven through the in-memory backend: no sockets, real
//! frames in and out, decoded with etherparse.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use uvs::control::proto::{DestSpec, Op};
use uvs::io::{PacketType, RxMeta};
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, service};
use uvs::wire::MacAddr;

fn rs_mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, last])
}

fn svc(p: Protocol, port: u16) -> ServiceKey {
    uvs::rig::svc(p, port)
}

fn dest(last: u8, port: u16, weight: u32) -> DestSpec {
    uvs::rig::dest(
        Ipv4Addr::new(198, 18, 0, last),
        port,
        Forward::Route,
        weight,
    )
}

fn wrr_ops() -> Vec<Op> {
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "wrr",
        &[dest(11, 80, 3), dest(12, 80, 1)],
    );
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "rr",
        &[dest(11, 53, 1), dest(12, 53, 1)],
    ));
    ops
}

fn tcp(sport: u16, dport: u16, syn: bool, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4([198, 18, 0, 10], VIP, ttl);
    let b = if syn {
        b.tcp(sport, dport, 1, 64000).syn()
    } else {
        b.tcp(sport, dport, 2, 64000).ack(1)
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 18, 0, 10], VIP, 64)
        .udp(sport, dport)
        .write(&mut v, b"NAME")
        .unwrap();
    v
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CL_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CL_MAC);
    f.extend_from_slice(&[198, 18, 0, 10]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0); // Ethernet minimum with padding
    f
}

/// Destination MAC's last byte of a forwarded frame, after checking the
/// frame is a faithful DR copy of `orig`.
fn dr_target(orig: &[u8], out: &[u8]) -> u8 {
    assert_eq!(&out[6..12], &DIR_MAC, "source MAC is the director's");
    let a = SlicedPacket::from_ethernet(orig).unwrap();
    let b = SlicedPacket::from_ethernet(out).unwrap();
    let (Some(NetSlice::Ipv4(ia)), Some(NetSlice::Ipv4(ib))) = (a.net, b.net) else {
        panic!("not ipv4")
    };
    let (ha, hb) = (ia.header().to_header(), ib.header().to_header());
    assert_eq!(hb.time_to_live, ha.time_to_live - 1);
    assert_eq!(hb.header_checksum, hb.calc_header_checksum());
    assert_eq!(
        (ha.source, ha.destination),
        (hb.source, hb.destination),
        "DR keeps addresses"
    );
    assert_eq!(ia.payload().payload, ib.payload().payload, "L4 untouched");
    out[5]
}

#[test]
fn answers_arp_only_for_vips() {
    let mut r = Rig::new(&wrr_ops());
    let out = r.feed_meta(
        arp_request(VIP),
        RxMeta {
            pkt_type: PacketType::Broadcast,
            ..RxMeta::default()
        },
    );
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!(&a[0..6], &CL_MAC);
    assert_eq!(&a[6..12], &DIR_MAC);
    assert_eq!(&a[20..22], &[0, 2], "ARP reply");
    assert_eq!(&a[22..28], &DIR_MAC);
    assert_eq!(&a[28..32], &VIP);
    assert_eq!(&a[38..42], &[198, 18, 0, 10]);
    let out = r.feed_meta(
        arp_request([198, 18, 0, 11]),
        RxMeta {
            pkt_type: PacketType::Broadcast,
            ..RxMeta::default()
        },
    );
    assert!(out.is_empty(), "no answer for a real server's address");
}

#[test]
fn gratuitous_arp_when_a_vip_appears() {
    let mut r = Rig::new(&[]);
    r.io.take_sent();
    r.apply(&wrr_ops()[..1]);
    let sent = r.io.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(&sent[0][0..6], &[0xff; 6]);
    assert_eq!(&sent[0][28..32], &VIP, "sender IP");
    assert_eq!(&sent[0][38..42], &VIP, "target IP");
}

#[test]
fn routed_vips_get_no_arp_answer_nor_announcement_but_their_traffic() {
    let mut r = Rig::new(&[]);
    r.dp.set_routed(true);
    r.io.take_sent();
    r.apply(&wrr_ops());
    assert!(r.io.take_sent().is_empty(), "no gratuitous ARP");
    let broadcast = RxMeta {
        pkt_type: PacketType::Broadcast,
        ..RxMeta::default()
    };
    assert!(r.feed_meta(arp_request(VIP), broadcast).is_empty());
    assert_eq!(r.counter("arp_replies"), 0);
    let syn = tcp(40000, 80, true, 64, b"");
    let out = r.feed(syn.clone());
    assert_eq!(out.len(), 1, "the routed VIP's traffic is forwarded");
    dr_target(&syn, &out[0]);
}

#[test]
fn wrr_over_new_connections_and_stickiness() {
    let mut r = Rig::new(&wrr_ops());
    let mut picks = String::new();
    for p in 0..8u16 {
        let f = tcp(40000 + p, 80, true, 64, b"");
        let out = r.feed(f.clone());
        assert_eq!(out.len(), 1);
        picks.push(if dr_target(&f, &out[0]) == 11 {
            'A'
        } else {
            'B'
        });
    }
    // Newest real server first, as in the kernel: list is [.12 (w1), .11
    // (w3)]. Added one after the other, as `ipvsadm -a` twice: the first
    // add leaves cw = mw of .11 alone (3 - (gcd 3 - 1) = 1) and the second
    // keeps it (ip_vs_wrr_dest_changed), so the first round is cw = 1.
    assert_eq!(picks, "BAAABAAA");
    // The same 5-tuple keeps its server (the first went to .12).
    for _ in 0..20 {
        let f = tcp(40000, 80, false, 64, b"data");
        let out = r.feed(f.clone());
        assert_eq!(dr_target(&f, &out[0]), 12);
    }
    // UDP rr alternates per new 5-tuple and sticks per tuple.
    let a = dr_target(&udp(5000, 53), &r.feed(udp(5000, 53))[0]);
    let b = dr_target(&udp(5001, 53), &r.feed(udp(5001, 53))[0]);
    assert_ne!(a, b);
    assert_eq!(dr_target(&udp(5000, 53), &r.feed(udp(5000, 53))[0]), a);
}

#[test]
fn weight_zero_keeps_old_connections_and_removal_ends_them() {
    let mut r = Rig::new(&wrr_ops());
    let first = tcp(41000, 80, true, 64, b"");
    let to = dr_target(&first, &r.feed(first.clone())[0]);
    r.apply(&[Op::EditDest {
        key: svc(Protocol::Tcp, 80),
        dest: dest(to, 80, 0),
    }]);
    let f = tcp(41000, 80, false, 64, b"more");
    assert_eq!(
        dr_target(&f, &r.feed(f.clone())[0]),
        to,
        "existing connection continues"
    );
    for p in 0..10 {
        let f = tcp(42000 + p, 80, true, 64, b"");
        assert_ne!(
            dr_target(&f, &r.feed(f.clone())[0]),
            to,
            "no new connection to weight 0"
        );
    }
    r.apply(&[Op::DelDest {
        key: svc(Protocol::Tcp, 80),
        addr: Ipv4Addr::new(198, 18, 0, to).into(),
        port: 80,
    }]);
    assert!(
        r.feed(tcp(41000, 80, false, 64, b"x")).is_empty(),
        "connection ended with its server"
    );
    assert!(
        r.dp.conn_list()
            .iter()
            .all(|c| c.daddr != Ipv4Addr::new(198, 18, 0, to))
    );
}

#[test]
fn non_syn_without_connection_is_dropped_and_others_left_alone() {
    let mut r = Rig::new(&wrr_ops());
    assert!(r.feed(tcp(43000, 80, false, 64, b"x")).is_empty());
    assert!(
        r.feed(tcp(43001, 81, true, 64, b"")).is_empty(),
        "port without a service"
    );
    let out = r.feed_meta(
        tcp(43002, 80, true, 64, b""),
        RxMeta {
            pkt_type: PacketType::OtherHost,
            ..RxMeta::default()
        },
    );
    assert!(out.is_empty(), "frames flooded to another MAC are not ours");
    let mut other = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 18, 0, 10], [198, 18, 0, 2], 64)
        .tcp(1, 22, 1, 100)
        .syn()
        .write(&mut other, b"")
        .unwrap();
    assert!(
        r.feed(other).is_empty(),
        "the director's own traffic is the kernel's"
    );
    assert_eq!(r.dp.conn_count(), 0);
}

/// Parses an ICMP error the director sent: (type, code, source address).
fn icmp_of(out: &[u8]) -> (u8, u8, [u8; 4]) {
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let body = ip.payload().payload;
    assert_eq!(
        uvs::wire::checksum::fold(uvs::wire::checksum::sum(body)),
        0xffff
    );
    assert_eq!(&out[0..6], &CL_MAC);
    (body[0], body[1], h.source)
}

#[test]
fn icmp_errors_for_ttl_and_no_destination() {
    let mut r = Rig::new(&wrr_ops());
    let out = r.feed(tcp(44000, 80, true, 1, b""));
    assert_eq!(out.len(), 1);
    assert_eq!(icmp_of(&out[0]), (11, 0, VIP));
    r.apply(&[
        Op::EditDest {
            key: svc(Protocol::Tcp, 80),
            dest: dest(11, 80, 0),
        },
        Op::EditDest {
            key: svc(Protocol::Tcp, 80),
            dest: dest(12, 80, 0),
        },
    ]);
    let out = r.feed(tcp(44001, 80, true, 64, b""));
    assert_eq!(icmp_of(&out[0]), (3, 3, VIP));
}

#[test]
fn partial_checksums_are_completed_on_the_way_out() {
    let mut r = Rig::new(&wrr_ops());
    let mut f = tcp(45000, 80, true, 64, b"hello");
    let l4 = 34;
    let good = [f[l4 + 16], f[l4 + 17]];
    let ps = uvs::wire::checksum::fold(uvs::wire::checksum::pseudo_header(
        [198, 18, 0, 10].into(),
        VIP.into(),
        6,
        (f.len() - l4) as u32,
    ));
    f[l4 + 16..l4 + 18].copy_from_slice(&ps.to_be_bytes());
    let out = r.feed_meta(
        f,
        RxMeta {
            csum_partial: Some((l4 as u16, 16)),
            ..RxMeta::default()
        },
    );
    assert_eq!([out[0][l4 + 16], out[0][l4 + 17]], good);
}

#[test]
fn tcp_states_and_counts_follow_ipvs() {
    let mut r = Rig::new(&wrr_ops());
    r.feed(tcp(46000, 80, true, 64, b""));
    let c = r.dp.conn_list();
    assert_eq!(c[0].state, "SYN_RECV");
    r.feed(tcp(46000, 80, false, 64, b""));
    assert_eq!(r.dp.conn_list()[0].state, "ESTABLISHED");
    let snap = r.model.snapshot();
    let total: u32 = snap.services[0].dests.iter().map(|d| d.active).sum();
    assert_eq!(total, 1);
    let conns: u64 = snap.services[0].stats.conns;
    assert_eq!(conns, 1);
    assert_eq!(snap.services[0].stats.inpkts, 2);
    // Expiry: the sweep drops it and the counts go back to zero.
    r.dp.expire(u64::MAX);
    assert_eq!(r.dp.conn_count(), 0);
    let snap = r.model.snapshot();
    assert!(
        snap.services[0]
            .dests
            .iter()
            .all(|d| d.active == 0 && d.inactive == 0)
    );
}

#[test]
fn garbage_frames_never_panic() {
    garbage(&wrr_ops());
    garbage(&tun_ops());
}

fn garbage(ops: &[Op]) {
    let mut r = Rig::new(ops);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let base = tcp(47000, 80, true, 64, b"payload!");
    for i in 0..20000 {
        // Truncate and flip bytes in the headers, with random offload metadata.
        let f = crate::mangle(&base, &mut x, if i % 3 == 0 { 0 } else { 14 }, 4);
        let meta = RxMeta {
            csum_partial: (i % 2 == 0).then_some(((x >> 16) as u16 % 80, (x >> 24) as u16 % 40)),
            gso: (i % 5 == 0).then_some(uvs::io::Gso {
                tcpv4: i % 10 == 0,
                tcpv6: false,
                size: (x >> 40) as u16 % 64,
            }),
            ..RxMeta::default()
        };
        r.io.push_with(f, meta);
        r.poll();
    }
}

#[test]
fn transport_checksum_still_valid_after_forwarding() {
    let mut r = Rig::new(&wrr_ops());
    let f = udp(6000, 53);
    let out = r.feed(f);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!()
    };
    let want = u
        .to_header()
        .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
        .unwrap();
    assert_eq!(u.checksum(), want);
}

fn tun_ops() -> Vec<Op> {
    let tun = |port| uvs::rig::dest(Ipv4Addr::new(198, 18, 0, 11), port, Forward::Tunnel, 1);
    let mut ops = service(svc(Protocol::Tcp, 80), "rr", &[tun(80)]);
    ops.extend(service(svc(Protocol::Udp, 53), "rr", &[tun(53)]));
    ops
}

fn udp_sized(payload: usize, df: bool, tos: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 18, 0, 10], VIP, 64)
        .udp(7000, 53)
        .write(&mut v, &vec![0x33; payload])
        .unwrap();
    v[14 + 1] = tos;
    v[14 + 6] = if df { 0x40 } else { 0 };
    let mut ip = uvs::wire::Ipv4Packet::new_checked(&mut v[14..]).unwrap();
    ip.fill_checksum();
    v
}

#[test]
fn tun_wraps_the_packet_from_the_director_to_the_real_server() {
    let mut r = Rig::new(&tun_ops());
    // ECN CE inside becomes ECT(0) outside; DSCP is copied.
    let f = udp_sized(100, true, 0xb8 | 3);
    let out = r.feed(f.clone());
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&o[0..6], &rs_mac(11).0, "next hop MAC");
    let outer = etherparse::Ipv4HeaderSlice::from_slice(&o[14..34])
        .unwrap()
        .to_header();
    assert_eq!(outer.protocol, etherparse::IpNumber(4));
    assert_eq!(outer.source, [198, 18, 0, 2]);
    assert_eq!(outer.destination, [198, 18, 0, 11]);
    assert_eq!(
        outer.time_to_live, 63,
        "outer TTL = inner TTL after the decrement"
    );
    assert!(outer.dont_fragment, "DF copied from the inner packet");
    assert_eq!(outer.identification, 0, "id 0 with DF, as Linux");
    assert_eq!(outer.dscp.value() << 2 | outer.ecn.value(), 0xb8 | 2);
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    let inner = &o[34..];
    let mut expect = f[14..].to_vec();
    expect[8] -= 1; // TTL
    let mut ip = uvs::wire::Ipv4Packet::new_checked(&mut expect[..]).unwrap();
    ip.fill_checksum();
    assert_eq!(inner, &expect[..], "inner packet unchanged but for TTL");
}

#[test]
fn tun_too_big_with_df_gets_frag_needed_and_without_is_fragmented() {
    let mut r = Rig::new(&tun_ops());
    // 1472 bytes of UDP payload: 1500 inner, 1520 once wrapped.
    let out = r.feed(udp_sized(1472, true, 0));
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&o[0..6], &CL_MAC, "back to the client");
    assert_eq!((o[34], o[35]), (3, 4), "ICMP fragmentation needed");
    assert_eq!(u16::from_be_bytes([o[40], o[41]]), 1480, "next-hop MTU");
    let out = r.feed(udp_sized(1472, false, 0));
    assert_eq!(out.len(), 2, "outer fragments");
    let mut payload = Vec::new();
    for (i, f) in out.iter().enumerate() {
        assert!(f.len() - 14 <= 1500);
        let h = etherparse::Ipv4HeaderSlice::from_slice(&f[14..34])
            .unwrap()
            .to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.more_fragments, i == 0);
        assert_eq!(usize::from(h.fragment_offset.value()) * 8, payload.len());
        assert_ne!(h.identification, 0);
        payload.extend_from_slice(&f[34..]);
    }
    let ids: Vec<u16> = out
        .iter()
        .map(|f| u16::from_be_bytes([f[18], f[19]]))
        .collect();
    assert_eq!(ids[0], ids[1], "one datagram, one id");
    assert_eq!(payload.len(), 1500);
    assert_eq!(&payload[28..], &[0x33; 1472][..]);
}

/// A real server kept in the configuration before it resolves is never
/// scheduled; once its next hop is known, its service's scheduler sees
/// its weight.
#[test]
fn an_unresolved_real_server_is_not_scheduled_until_it_resolves() {
    use uvs::lvs::table::NextHop;
    fn hop(ip: std::net::IpAddr, f: Forward) -> NextHop {
        match ip {
            std::net::IpAddr::V4(a) if a.octets()[3] == 12 => NextHop::pending(0),
            _ => uvs::rig::hop_by_last_octet(ip, f),
        }
    }
    let ops = service(
        svc(Protocol::Tcp, 80),
        "rr",
        &[dest(11, 80, 1), dest(12, 80, 1)],
    );
    let mut r = Rig::build(uvs::rig::one_link(), hop, Vec::new(), &ops);
    let to: Vec<u8> = (0..10)
        .map(|p| {
            let f = tcp(43000 + p, 80, true, 64, b"");
            dr_target(&f, &r.feed(f.clone())[0])
        })
        .collect();
    assert!(to.iter().all(|t| *t == 11), "{to:?}");
    let twelve = Ipv4Addr::new(198, 18, 0, 12).into();
    assert!(r.model.set_hop(
        twelve,
        Forward::Route,
        uvs::rig::hop_by_last_octet(twelve, Forward::Route)
    ));
    r.publisher.publish(&r.model, &r.routes);
    r.poll();
    let to: Vec<u8> = (0..10)
        .map(|p| {
            let f = tcp(44000 + p, 80, true, 64, b"");
            dr_target(&f, &r.feed(f.clone())[0])
        })
        .collect();
    assert_eq!(to.iter().filter(|t| **t == 12).count(), 5, "{to:?}");
}

/// A TCP super-frame (GSO) through DR: a backend that takes super-frames
/// gets it whole, its checksum still partial, for the kernel to cut after
/// uvs; one that does not gets the segments.
#[test]
fn super_frames_go_out_whole_where_the_backend_takes_them() {
    let payload = vec![0x5a; 20000];
    let frame = |syn| {
        let mut f = tcp(45100, 80, syn, 64, if syn { b"" } else { &payload });
        let l4 = 34;
        let ps = uvs::wire::checksum::fold(uvs::wire::checksum::pseudo_header(
            [198, 18, 0, 10].into(),
            VIP.into(),
            6,
            (f.len() - l4) as u32,
        ));
        f[l4 + 16..l4 + 18].copy_from_slice(&ps.to_be_bytes());
        f
    };
    let meta = RxMeta {
        csum_partial: Some((34, 16)),
        gso: Some(uvs::io::Gso {
            tcpv4: true,
            tcpv6: false,
            size: 1448,
        }),
        ..RxMeta::default()
    };
    for whole in [true, false] {
        let mut r = Rig::new(&wrr_ops());
        r.io.accept_gso = whole;
        r.feed(frame(true));
        let f = frame(false);
        let out = r.feed_meta(f.clone(), meta);
        match whole {
            true => {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].len(), f.len());
                // Only the MACs and the TTL (and so the IP checksum) change.
                assert_eq!(out[0][34..], f[34..]);
                assert_eq!(r.io.tx_gso.len(), 1);
                let (_, g, csum, hdr) = r.io.tx_gso[0];
                assert_eq!((g.size, csum, hdr), (1448, (34, 16), 54));
                assert_eq!(r.counter("gso_passed"), 1);
            }
            false => {
                assert_eq!(out.len(), 20000usize.div_ceil(1448));
                assert_eq!(r.counter("gso_segmented"), 1);
            }
        }
    }
}
