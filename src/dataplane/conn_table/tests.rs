//! The connection table's tests: entries found by key and by reply,
//! eviction, limits, running counts and bounded walks.

use super::*;
use crate::dataplane::conn::tests::conn;
use crate::lvs::service::{Forward, Protocol};
use std::net::Ipv4Addr;

/// Issue 14's target: an entry (with its chain links) in 64 bytes.
#[test]
fn an_entry_takes_at_most_64_bytes() {
    assert!(
        std::mem::size_of::<Slot>() <= 64,
        "{}",
        std::mem::size_of::<Slot>()
    );
}

/// The shortest timer follows the states entries enter and leave.
#[test]
fn the_shortest_timeout_follows_the_states_present() {
    let t = Timeouts::default();
    let mut table = ConnTable::new(10);
    assert_eq!(table.shortest_timeout(&t), None);
    table.insert(key(1, 80), conn(Forward::Route)).unwrap();
    assert_eq!(table.shortest_timeout(&t), Some(t.udp));
    let mut est = conn(Forward::Route);
    est.state = ConnState::Tcp(TcpState::Established);
    table.insert(key(2, 80), est).unwrap();
    assert_eq!(table.shortest_timeout(&t), Some(t.udp));
    let c = table.get_mut(&key(2, 80)).unwrap();
    c.state = ConnState::Tcp(TcpState::Close);
    let c = *c;
    table.restated(&key(2, 80), &c, ConnState::Tcp(TcpState::Established));
    assert_eq!(table.shortest_timeout(&t), Some(10));
    table.remove(&key(2, 80));
    assert_eq!(table.shortest_timeout(&t), Some(t.udp));
    table.remove(&key(1, 80));
    assert_eq!(table.shortest_timeout(&t), None);
}

fn key(cport: u16, vport: u16) -> ConnKey {
    ConnKey {
        protocol: Protocol::Tcp,
        caddr: Ipv4Addr::new(198, 18, 0, 10),
        cport,
        vaddr: Ipv4Addr::new(198, 18, 0, 100),
        vport,
    }
}

#[test]
fn nat_connections_are_found_by_their_reply_and_forgotten_with_them() {
    let mut t = ConnTable::new(10);
    let (k1, k2) = (key(1000, 80), key(1001, 80));
    t.insert(k1, conn(Forward::Masq)).unwrap();
    t.insert(k2, conn(Forward::Route)).unwrap();
    let r1 = ReplyKey::of(&k1, Ipv4Addr::new(198, 18, 1, 11), 8080);
    assert_eq!(t.by_reply(&r1), Some(k1));
    // DR connections have no reply entry.
    let r2 = ReplyKey::of(&k2, Ipv4Addr::new(198, 18, 1, 11), 8080);
    assert!(t.by_reply(&r2).is_none());
    // The same client port to the same real server through another
    // VIP port would make replies ambiguous.
    assert_eq!(
        t.insert(key(1000, 81), conn(Forward::Masq)).err(),
        Some(InsertError::ReplyClash)
    );
    t.retain(|k, _, _| *k != k1);
    assert!(t.by_reply(&r1).is_none());
    t.insert(k1, conn(Forward::Masq)).unwrap();
    assert!(t.remove(&k1).is_some());
    assert!(t.by_reply(&r1).is_none());
    assert_eq!(t.len(), 1);
}

fn udp_key(p: u16) -> ConnKey {
    ConnKey {
        protocol: Protocol::Udp,
        caddr: Ipv4Addr::new(198, 18, 0, 10),
        cport: p,
        vaddr: Ipv4Addr::new(198, 18, 0, 100),
        vport: 53,
    }
}

/// A table of at most `limit` entries after `n` DR flows to UDP ports
/// 0 to n - 1 were entered in turn.
fn udp_table(limit: usize, n: u16) -> ConnTable {
    let mut t = ConnTable::new(limit);
    for p in 0..n {
        t.insert(udp_key(p), conn(Forward::Route)).unwrap();
    }
    t
}

#[test]
fn a_full_table_evicts_the_oldest_one_packet_entry() {
    let mut t = ConnTable::new(3);
    let c = conn(Forward::Route);
    for p in 0..3u16 {
        assert_eq!(t.insert(udp_key(p), c).unwrap().map(|e| e.0), None);
    }
    // Entry 0 saw a second packet; 1 is the oldest one-packet entry.
    t.get_mut(&udp_key(0)).unwrap();
    let out = t.insert(udp_key(3), c).unwrap();
    assert_eq!(out.map(|e| e.0), Some(udp_key(1)));
    assert!(t.get(&udp_key(1)).is_none());
    assert!(t.get(&udp_key(0)).is_some());
    assert_eq!((t.len(), t.evicted()), (3, 1));
    // Then 2, then the newest, 3; never 0.
    assert_eq!(
        t.insert(udp_key(4), c).unwrap().map(|e| e.0),
        Some(udp_key(2))
    );
    assert_eq!(
        t.insert(udp_key(5), c).unwrap().map(|e| e.0),
        Some(udp_key(3))
    );
    assert!(t.get(&udp_key(0)).is_some());
}

#[test]
fn a_table_of_established_connections_refuses_rather_than_evicts() {
    let mut t = ConnTable::new(2);
    let mut c = conn(Forward::Route);
    c.state = ConnState::Tcp(TcpState::Established);
    for p in 0..2u16 {
        t.insert(key(p, 80), c).unwrap();
        t.get_mut(&key(p, 80)).unwrap();
    }
    assert_eq!(t.insert(key(9, 80), c).err(), Some(InsertError::Full));
    // A half-open handshake is cheap even after a retransmitted SYN.
    t.remove(&key(0, 80));
    c.state = ConnState::Tcp(TcpState::SynRecv);
    t.insert(key(5, 80), c).unwrap();
    t.get_mut(&key(5, 80)).unwrap();
    let out = t.insert(key(6, 80), c).unwrap();
    assert_eq!(out.map(|e| e.0), Some(key(5, 80)));
    assert_eq!(t.len(), 2);
}

#[test]
fn slots_are_reused_and_never_grow_past_the_limit() {
    let t = udp_table(100, 10_000);
    assert_eq!((t.len(), t.slots(), t.evicted()), (100, 100, 9_900));
    assert!(t.get(&udp_key(9_999)).is_some());
    assert!(t.get(&udp_key(9_899)).is_none());
}

#[test]
fn a_large_table_finds_every_entry_by_key_and_by_reply() {
    let mut t = ConnTable::new(1 << 20);
    let mut c = conn(Forward::Masq);
    let key = |i: u32| ConnKey {
        protocol: Protocol::Udp,
        caddr: Ipv4Addr::from(0xc613_0000 + (i >> 16)),
        cport: i as u16,
        vaddr: Ipv4Addr::new(198, 18, 0, 100),
        vport: 53,
    };
    for i in 0..300_000u32 {
        c.rport = (i % 7) as u16;
        t.insert(key(i), c).unwrap();
    }
    assert_eq!(t.len(), 300_000);
    for i in (0..300_000u32).step_by(7) {
        let k = key(i);
        assert!(t.get(&k).is_some());
        assert_eq!(
            t.by_reply(&ReplyKey::of(&k, c.raddr, (i % 7) as u16)),
            Some(k)
        );
    }
    // Removing every other entry leaves the rest reachable (chains
    // unlinked in the middle, at the head and at the tail).
    for i in (0..300_000u32).step_by(2) {
        assert!(t.remove(&key(i)).is_some());
    }
    for i in 0..300_000u32 {
        assert_eq!(t.get(&key(i)).is_some(), i % 2 == 1, "{i}");
        let r = ReplyKey::of(&key(i), c.raddr, (i % 7) as u16);
        assert_eq!(t.by_reply(&r).is_some(), i % 2 == 1, "{i}");
    }
    assert_eq!(t.len(), 150_000);
}

#[test]
fn sweep_steps_are_bounded_and_cover_the_table() {
    let mut t = udp_table(1000, 1000);
    // Drop the even ports, at most 100 visits and 30 removals a step.
    let mut steps = 0;
    loop {
        let s = t.sweep_step(100, 30, |k, _, _| k.cport % 2 == 1);
        assert!(s.visited <= 100 && s.removed <= 30);
        steps += 1;
        if s.wrapped {
            break;
        }
    }
    assert_eq!(t.len(), 500);
    assert!(steps >= 17, "{steps}");
    // The listing walks the same slots in chunks.
    let (mut n, mut from) = (0, Some(0));
    while let Some(f) = from {
        let (part, next) = t.chunk(f, 64);
        assert!(part.len() <= 64);
        n += part.len();
        from = next;
    }
    assert_eq!(n, 500);
}
