//! Floods and reflection, driven through the in-memory backend: a flood
//! of new flows on one service must not lock out established connections
//! or other services, and spoofed packets must not draw an ICMP error
//! each.

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::Instant;
use uvs::control::proto::Op;
use uvs::lvs::service::{Forward, Protocol};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, dest, hop_by_last_octet, one_link, service, svc};

fn ops() -> Vec<Op> {
    let rs = |last, port| dest(Ipv4Addr::new(198, 18, 0, last), port, Forward::Route, 1);
    let mut ops = service(svc(Protocol::Tcp, 80), "rr", &[rs(11, 80), rs(12, 80)]);
    ops.extend(service(svc(Protocol::Udp, 53), "rr", &[rs(11, 53)]));
    ops.extend(service(svc(Protocol::Udp, 123), "rr", &[rs(12, 123)]));
    ops
}

fn tcp(src: [u8; 4], sport: u16, syn: bool, ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4(src, VIP, ttl);
    let b = match syn {
        true => b.tcp(sport, 80, 1, 64000).syn(),
        false => b.tcp(sport, 80, 2, 64000).ack(1),
    };
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

fn udp(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4(src, VIP, 64)
        .udp(sport, dport)
        .write(&mut v, b"x")
        .unwrap();
    v
}

const CLIENT: [u8; 4] = [198, 18, 0, 10];

/// The flood the issue describes, scaled to a 1,000-entry table: 20,000
/// spoofed one-packet UDP flows to one service.
#[test]
fn a_flood_on_one_service_leaves_established_connections_and_other_services_working() {
    let mut r = Rig::build_max(one_link(), hop_by_last_octet, Vec::new(), &ops(), 1000);
    // An established TCP connection and a two-way UDP flow to the other
    // UDP service, before the flood.
    assert_eq!(r.feed(tcp(CLIENT, 40000, true, 64)).len(), 1);
    assert_eq!(r.feed(tcp(CLIENT, 40000, false, 64)).len(), 1);
    assert_eq!(r.feed(udp(CLIENT, 50000, 123)).len(), 1);
    assert_eq!(r.feed(udp(CLIENT, 50000, 123)).len(), 1);
    for i in 0..20_000u32 {
        let src = [198, 19, (i >> 8) as u8, i as u8];
        r.feed(udp(src, 1024 + (i % 60000) as u16, 53));
    }
    assert!(r.dp.conn_count() <= 1000);
    assert!(
        r.counter("conn_evictions") >= 19_000,
        "evictions {}",
        r.counter("conn_evictions")
    );
    assert_eq!(r.counter("conn_table_full"), 0);
    // The established connection and the two-way flow still go through.
    assert_eq!(r.feed(tcp(CLIENT, 40000, false, 64)).len(), 1);
    assert_eq!(r.feed(udp(CLIENT, 50000, 123)).len(), 1);
    // New connections to every service are still accepted.
    assert_eq!(r.feed(tcp(CLIENT, 40001, true, 64)).len(), 1);
    assert_eq!(r.feed(udp(CLIENT, 50001, 123)).len(), 1);
    assert_eq!(r.feed(udp(CLIENT, 50002, 53)).len(), 1);
    let listed = r.dp.conn_list();
    assert!(listed.len() <= 1000);
    let has = |cport: u16, vport: u16| {
        listed
            .iter()
            .any(|c| c.cport == cport && c.vport == vport && c.caddr == Ipv4Addr::from(CLIENT))
    };
    assert!(has(40000, 80) && has(50000, 123) && has(40001, 80));
}

/// When every entry is established there is nothing cheap to lose: a new
/// connection is refused (counted) rather than an established one cut.
#[test]
fn a_table_full_of_established_connections_refuses_new_ones() {
    let mut r = Rig::build_max(one_link(), hop_by_last_octet, Vec::new(), &ops(), 10);
    for p in 0..10u16 {
        r.feed(tcp(CLIENT, 41000 + p, true, 64));
        r.feed(tcp(CLIENT, 41000 + p, false, 64));
    }
    assert!(r.feed(tcp(CLIENT, 42000, true, 64)).is_empty());
    assert_eq!(r.counter("conn_table_full"), 1);
    assert_eq!(r.counter("conn_evictions"), 0);
    for p in 0..10u16 {
        assert_eq!(r.feed(tcp(CLIENT, 41000 + p, false, 64)).len(), 1);
    }
}

fn icmp_replies(out: &[Vec<u8>]) -> usize {
    out.iter()
        .filter(|f| f.len() > 23 && f[12..14] == [8, 0] && f[23] == 1)
        .count()
}

#[test]
fn time_exceeded_is_rate_limited_per_destination_and_globally() {
    let mut r = Rig::new(&ops());
    // 10,000 spoofed TTL=1 SYNs from one source.
    let start = Instant::now();
    let mut sent = 0;
    for p in 0..10_000u16 {
        sent += icmp_replies(&r.feed(tcp(CLIENT, 1024 + p, true, 1)));
    }
    let secs = start.elapsed().as_secs() as usize;
    assert!(sent >= 6 && sent <= 6 + secs + 1, "{sent} in {secs} s");
    // From 10,000 sources: the global burst, then 1,000 a second.
    let start = Instant::now();
    let mut many = 0;
    for i in 0..10_000u32 {
        let src = [198, 19, (i >> 8) as u8, i as u8];
        many += icmp_replies(&r.feed(tcp(src, 2000, true, 1)));
    }
    let ms = start.elapsed().as_millis() as usize;
    assert!(many >= 40 && many <= 50 + ms + 1, "{many} in {ms} ms");
    assert_eq!(
        r.counter("icmp_rate_limited") as usize,
        20_000 - sent - many
    );
}

#[test]
fn port_unreachable_for_a_service_without_servers_is_rate_limited() {
    let mut r = Rig::new(&ops());
    let zero = |last| dest(Ipv4Addr::new(198, 18, 0, last), 80, Forward::Route, 0);
    r.apply(&[
        Op::EditDest {
            key: svc(Protocol::Tcp, 80),
            dest: zero(11),
        },
        Op::EditDest {
            key: svc(Protocol::Tcp, 80),
            dest: zero(12),
        },
    ]);
    let start = Instant::now();
    let sent: usize = (0..10_000u16)
        .map(|p| icmp_replies(&r.feed(tcp(CLIENT, 1024 + p, true, 64))))
        .sum();
    let secs = start.elapsed().as_secs() as usize;
    assert!(sent >= 6 && sent <= 6 + secs + 1, "{sent}");
    assert_eq!(r.counter("no_dest"), 10_000);
}

fn arp(op: u16, sender_mac: [u8; 6], sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target_ip);
    f.resize(60, 0);
    f
}

/// Another host announcing (or answering for) a VIP in service is counted
/// and never answered: no ARP fight.
#[test]
fn a_host_claiming_a_vip_in_service_is_counted_not_fought() {
    let mut r = Rig::new(&ops());
    let other = [2, 0, 0, 0, 0, 0x77];
    for _ in 0..100 {
        assert!(r.feed(arp(1, other, VIP, VIP)).is_empty());
        assert!(r.feed(arp(2, other, VIP, CLIENT)).is_empty());
    }
    assert_eq!(r.counter("vip_conflicts"), 200);
    // Our own VIP still gets answered for a client's request.
    let out = r.feed(arp(1, CL_MAC, CLIENT, VIP));
    assert_eq!(out.len(), 1);
    assert_eq!(r.counter("vip_conflicts"), 200);
}
