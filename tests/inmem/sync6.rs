//! Connection sync and the handoff for IPv6 connections, beside IPv4
//! ones: a standby data plane applies the active one's IPv6 records to
//! its IPv6 table (upserts, state changes, removals), the digest covers
//! both tables, a full resync walks both, a takeover continues every
//! IPv6 connection on its real server, and the handoff carries them. A
//! forged or garbage IPv6 record, even under a valid MAC, is refused or
//! names nothing here: no panic, the table as it was.

use crate::dr6::{CLIENT6, rs6, udp6};
use crate::sync::{pair_of, records, sent_to, tcp};
use etherparse::PacketBuilder;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::sync_channel;
use uvs::control::proto::Op;
use uvs::ha::sync::{Body, SyncMsg};
use uvs::lvs::conn::PortableConn;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::lvs::sync::Record;
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP6, dest, service, svc};
use uvs::wire::ha::sync::{self as wire, SyncHeader, SyncRecord};

const KEY: &[u8] = b"a key of sixteen bytes";

/// TCP :80 and UDP :53 on VIP6 and on the IPv4 VIP, two real servers
/// each by rr.
fn ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for (p, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 53)] {
        let six = [rs6(0x11), rs6(0x12)].map(|a| dest(a, port, Forward::Route, 1));
        ops.extend(service(ServiceKey::addr(p, VIP6, port), "rr", &six));
        let four = [11, 12].map(|l| dest(Ipv4Addr::new(198, 18, 0, l), port, Forward::Route, 1));
        ops.extend(service(svc(p, port), "rr", &four));
    }
    ops
}

/// A client's TCP segment to `[VIP6]:80` with `flags` (`crate::with_flags`).
fn tcp6(sport: u16, flags: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv6(CLIENT6.octets(), VIP6.octets(), 64);
    let mut v = Vec::new();
    crate::with_flags(b.tcp(sport, 80, 1000, 64240), flags)
        .write(&mut v, b"")
        .unwrap();
    v
}

fn is6(r: &Record) -> bool {
    r.key().caddr.is_ipv6()
}

/// 20 IPv6 TCP connections established (5 of them closing), 10 IPv6
/// UDP flows and 6 IPv4 TCP connections on `a`; the real server each
/// IPv6 TCP connection went to.
fn traffic(a: &mut Rig) -> Vec<[u8; 6]> {
    let mut went = Vec::new();
    for p in 0..20u16 {
        went.push(sent_to(&a.feed(tcp6(40000 + p, "S"))));
        a.feed(tcp6(40000 + p, "A"));
    }
    for p in 0..5u16 {
        a.feed(tcp6(40000 + p, "AF"));
    }
    for p in 0..10u16 {
        a.feed(udp6(50000 + p));
    }
    for p in 0..6u16 {
        a.feed(tcp(41000 + p, true, false));
        a.feed(tcp(41000 + p, false, false));
    }
    went
}

#[test]
fn a_backup_applies_ipv6_records_and_continues_every_ipv6_connection() {
    let (mut a, mut b, rx) = pair_of(&ops());
    let went = traffic(&mut a);
    let recs = records(&rx);
    // SYNs, handshakes completed and FINs of the IPv6 connections, the
    // UDP flows; then the IPv4 ones.
    assert_eq!(recs.iter().filter(|r| is6(r)).count(), 20 + 20 + 5 + 10);
    assert_eq!(recs.iter().filter(|r| !is6(r)).count(), 6 + 6);
    assert_eq!(b.dp.apply_sync(&recs), recs.len(), "every record applies");
    assert_eq!(b.dp.digest(), a.dp.digest());
    assert_eq!(b.dp.conn_count(), 20 + 10 + 6);
    assert_eq!(rows(&b), rows(&a));
    // A standby table's timers stand still: nothing expires there.
    b.dp.expire(u64::MAX / 2);
    assert_eq!(b.dp.conn_count(), 36);
    // A backup forwards nothing until it takes over; then every IPv6
    // connection continues mid-flow on the real server it had.
    assert!(b.feed(tcp6(40010, "A")).is_empty());
    b.publisher.set_standby(false);
    b.apply(&[]);
    for p in 5..20u16 {
        assert_eq!(
            sent_to(&b.feed(tcp6(40000 + p, "A"))),
            went[p as usize],
            "port {p}"
        );
    }
    assert_eq!(b.counter("no_conn_dropped"), 0);
}

/// The listed connections without their timers.
fn rows(r: &Rig) -> Vec<String> {
    let mut v: Vec<String> =
        r.dp.conn_list()
            .into_iter()
            .map(|c| {
                format!(
                    "{:?} {} {} {} {} {}",
                    c.protocol, c.caddr, c.cport, c.vaddr, c.daddr, c.state
                )
            })
            .collect();
    v.sort();
    v
}

#[test]
fn ipv6_removals_apply_and_a_full_resync_walks_both_tables() {
    let (mut a, mut b, rx) = pair_of(&ops());
    for p in 0..8u16 {
        a.feed(udp6(50000 + p));
    }
    b.dp.apply_sync(&records(&rx));
    assert_eq!(b.dp.conn_count(), 8);
    // The active one's entries expire: the removals follow.
    a.dp.expire(u64::MAX / 2);
    let gone = records(&rx);
    assert_eq!(gone.len(), 8);
    assert!(
        gone.iter()
            .all(|r| matches!(r, Record::Remove(_)) && is6(r))
    );
    assert_eq!(b.dp.apply_sync(&gone), 8);
    assert_eq!(b.dp.conn_count(), 0);
    assert_eq!(b.dp.digest(), a.dp.digest());

    // Lost messages: the backup lacks some of both families and has
    // strays of both. A full resync, walking both tables, repairs it.
    let went = traffic(&mut a);
    let recs = records(&rx);
    b.dp.apply_sync(&recs[..recs.len() / 2]);
    let mut stray = Rig::new(&ops());
    let (tx, srx) = sync_channel(64);
    stray.dp.set_sync(tx);
    for p in 0..3u16 {
        stray.feed(udp6(52000 + p));
        stray.feed(tcp(42000 + p, true, false));
    }
    assert_eq!(b.dp.apply_sync(&records(&srx)), 6);
    assert_ne!(b.dp.digest(), a.dp.digest());
    b.dp.resync_begin();
    let (mut from, mut sent) = (Some(0), 0);
    while let Some(f) = from {
        let (chunk, next) = a.dp.sync_chunk(f, 7, 1);
        sent += chunk.len();
        let ups: Vec<Record> = chunk.into_iter().map(Record::Upsert).collect();
        assert_eq!(b.dp.apply_sync(&ups), ups.len());
        from = next;
    }
    assert_eq!(sent, a.dp.conn_count());
    assert_eq!(b.dp.resync_end(), 6, "the strays of both families");
    assert_eq!(b.dp.digest(), a.dp.digest());
    b.publisher.set_standby(false);
    b.apply(&[]);
    for p in 0..20u16 {
        assert_eq!(sent_to(&b.feed(tcp6(40000 + p, "A"))), went[p as usize]);
    }
}

#[test]
fn the_handoff_carries_ipv6_connections() {
    let mut a = Rig::new(&ops());
    let went = traffic(&mut a);
    let conns = a.dp.export_conns();
    assert_eq!(conns.len(), 36);
    assert_eq!(conns.iter().filter(|p| p.caddr.is_ipv6()).count(), 30);
    let mut c = Rig::new(&ops());
    assert_eq!(c.dp.take_over(&mut c.io, &conns), conns.len());
    assert_eq!(c.dp.digest(), a.dp.digest());
    for p in 5..20u16 {
        assert_eq!(sent_to(&c.feed(tcp6(40000 + p, "A"))), went[p as usize]);
    }
    assert_eq!(c.counter("no_conn_dropped"), 0);
}

/// A message of `recs` under a valid MAC, parsed and, if it parses,
/// applied to `b`.
fn deliver(b: &mut Rig, recs: &[SyncRecord]) -> Option<usize> {
    let h = SyncHeader {
        kind: 1,
        boot: 7,
        seq: 1,
        sent_ms: 5,
        x: 0,
        y: 0,
    };
    match SyncMsg::parse(&wire::emit(&h, recs, KEY), KEY).ok()?.body {
        Body::Records(r) => Some(b.dp.apply_sync(&r)),
        _ => None,
    }
}

#[test]
fn forged_and_garbage_ipv6_records_change_nothing() {
    let (mut a, mut b, rx) = pair_of(&ops());
    traffic(&mut a);
    let recs = records(&rx);
    b.dp.apply_sync(&recs);
    let (digest, list) = (b.dp.digest(), rows(&b));
    let Some(Record::Upsert(p)) = recs.iter().find(|r| is6(r)).copied() else {
        panic!("an IPv6 upsert")
    };
    let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
    // Well-formed records that name nothing here: a real server, a VIP
    // or a port this director does not have, a family mix.
    let forged = [
        PortableConn {
            raddr: v6("2001:2::99"),
            cport: 5,
            ..p
        },
        PortableConn {
            vaddr: v6("2001:2::101"),
            cport: 1,
            ..p
        },
        PortableConn {
            rport: 81,
            cport: 2,
            ..p
        },
        PortableConn {
            raddr: Ipv4Addr::new(198, 18, 0, 11).into(),
            cport: 3,
            ..p
        },
        PortableConn {
            caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            cport: 4,
            ..p
        },
    ];
    for f in forged {
        assert_eq!(b.dp.apply_sync(&[Record::Upsert(f)]), 0, "{f:?}");
        assert_eq!(b.dp.import_conns(&[f]), 0, "{f:?}");
    }
    // Garbage under a valid MAC: 72 bytes of noise with the IPv6 op bit
    // set, read as a record, sent as a message, applied if it parses.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let (mut parsed, mut applied) = (0, 0);
    for i in 0..4000 {
        let mut bytes = [0u8; 72];
        for byte in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        // Mostly valid codes, so the checks past the first are reached.
        bytes[0] = 0x80 | (1 + (i % 4) as u8);
        if i % 2 == 0 {
            bytes[1] = [6, 17, 0][i % 3];
            bytes[2] = (i % 3) as u8;
            bytes[3] = (i % 12) as u8;
        }
        let r = SyncRecord::parse(&bytes).expect("72 bytes make a record");
        assert!(r.is_v6());
        if let Some(n) = deliver(&mut b, &[r]) {
            parsed += 1;
            applied += n;
        }
    }
    assert!(parsed > 0, "some garbage passes the codes' checks");
    // Removals of entries it does not have count as applied; nothing
    // else changed.
    let _ = applied;
    assert_eq!(b.dp.digest(), digest);
    assert_eq!(rows(&b), list);
}

/// The outer destination of a tunnelled frame (either family's header).
fn tunnelled_to(out: &[Vec<u8>]) -> IpAddr {
    assert_eq!(out.len(), 1, "one frame out");
    let o = &out[0];
    match (o[12], o[13]) {
        (0x08, 0x00) => Ipv4Addr::new(o[30], o[31], o[32], o[33]).into(),
        _ => {
            let b: [u8; 16] = o[38..54].try_into().unwrap();
            std::net::Ipv6Addr::from(b).into()
        }
    }
}

/// A client's UDP datagram to VIP:53 from `sport`.
fn udp4(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 18, 0, 10], uvs::rig::VIP, 64)
        .udp(sport, 53)
        .write(&mut v, b"query")
        .unwrap();
    v
}

/// A tunnel's connections of mixed families (an IPv4 client to an IPv6
/// real server, IPv4-in-IPv6, and the reverse) are synced as IPv6
/// records with their IPv4 addresses v4-mapped, applied by the backup to
/// the client's family's table, continued on the same real servers after
/// a takeover, and carried by the handoff.
#[test]
fn mixed_family_tunnel_connections_are_synced_and_handed_off() {
    let tun = |a: IpAddr| dest(a, 53, Forward::Tunnel, 1);
    let four = [11, 12].map(|l| tun(Ipv4Addr::new(198, 18, 0, l).into()));
    let six = [rs6(0x11), rs6(0x12)].map(|a| tun(a.into()));
    let mut ops = service(svc(Protocol::Udp, 53), "rr", &six);
    ops.extend(service(
        ServiceKey::addr(Protocol::Udp, VIP6, 53),
        "rr",
        &four,
    ));
    let (mut a, mut b, rx) = pair_of(&ops);
    let mut went = Vec::new();
    for p in 0..4u16 {
        went.push(tunnelled_to(&a.feed(udp4(6000 + p))));
        went.push(tunnelled_to(&a.feed(udp6(50000 + p))));
    }
    assert!(went[0].is_ipv6() && went[1].is_ipv4(), "{went:?}");
    let recs = records(&rx);
    assert_eq!(recs.len(), 8);
    // Through the wire: one IPv6 record each, read back as they were.
    let msg = SyncMsg {
        boot: 7,
        seq: 1,
        sent_ms: 5,
        body: Body::Records(recs.clone()),
    };
    let bytes = msg.emit(KEY);
    assert_eq!(bytes.len(), 80 + 8 * 72);
    let Ok(SyncMsg {
        body: Body::Records(back),
        ..
    }) = SyncMsg::parse(&bytes, KEY)
    else {
        panic!("the message parses")
    };
    assert_eq!(back, recs);
    assert_eq!(b.dp.apply_sync(&back), 8);
    assert_eq!(b.dp.digest(), a.dp.digest());
    assert_eq!(rows(&b), rows(&a));
    // The backup takes over: each flow's next datagram goes to its server.
    b.publisher.set_standby(false);
    b.apply(&[]);
    for p in 0..4u16 {
        let i = 2 * p as usize;
        assert_eq!(tunnelled_to(&b.feed(udp4(6000 + p))), went[i], "v4 {p}");
        assert_eq!(
            tunnelled_to(&b.feed(udp6(50000 + p))),
            went[i + 1],
            "v6 {p}"
        );
    }
    // And a planned restart's handoff carries them too.
    let conns = a.dp.export_conns();
    assert_eq!(conns.len(), 8);
    let mut c = Rig::new(&ops);
    assert_eq!(c.dp.take_over(&mut c.io, &conns), 8);
    assert_eq!(c.dp.digest(), a.dp.digest());
    for p in 0..4u16 {
        assert_eq!(tunnelled_to(&c.feed(udp4(6000 + p))), went[2 * p as usize]);
    }
}
