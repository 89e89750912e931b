//! The connection table with IPv6 keys: the same table, compiled for
//! `Ipv6Addr` (`ConnTable<Ipv6Addr>`), as the data plane's second table
//! will be: entries by key and by NAT66 reply, eviction, persistence
//! templates of a /64, walks and the digest.

use super::*;
use crate::dataplane::conn::tests::conn_to;
use crate::lvs::service::{Forward, Protocol, ServiceKey};
use crate::lvs::sync::digest_term;
use std::net::{IpAddr, Ipv6Addr};

/// 2001:2::`host` (the lab's clients and servers are in 2001:2::/48).
fn ip6(net: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host)
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

/// A TCP key from client `[2001:2:0:net::host]:cport` to `[VIP6]:80`.
fn key6(net: u16, host: u16, cport: u16) -> ConnKey<Ipv6Addr> {
    ConnKey {
        protocol: Protocol::Tcp,
        caddr: ip6(net, host),
        cport,
        vaddr: VIP6,
        vport: 80,
    }
}

/// An established entry to real server [2001:2::11]:8080.
fn conn6(fwd: Forward) -> Conn<Ipv6Addr> {
    let mut c = conn_to(fwd, ip6(0, 0x11));
    c.state = ConnState::Tcp(TcpState::Established);
    c
}

/// What each family's entry takes: IPv4's stays at issue 14's 64 bytes;
/// IPv6's three addresses take 36 bytes more (docs/ipv6.md).
#[test]
fn an_ipv4_entry_stays_64_bytes_and_an_ipv6_one_takes_100() {
    assert_eq!(ConnTable::<Ipv4Addr>::SLOT_BYTES, 64);
    assert_eq!(ConnTable::<Ipv6Addr>::SLOT_BYTES, 100);
    assert_eq!(
        ConnTable::<Ipv6Addr>::bytes_at_limit(1 << 20),
        8 * (1 << 20) + (1 << 20) * (100 + 8)
    );
    assert!(
        ConnTable::<Ipv6Addr>::limit_line(1 << 20)
            .starts_with("IPv6 up to 1048576 entries, about 116 MiB when full (100 bytes")
    );
}

#[test]
fn ipv6_entries_are_found_by_key_and_nat66_replies_by_theirs() {
    let mut t = ConnTable::<Ipv6Addr>::new(16);
    let (a, b) = (key6(1, 10, 1000), key6(1, 10, 1001));
    t.insert(a, conn6(Forward::Masq)).unwrap();
    t.insert(b, conn6(Forward::Route)).unwrap();
    assert_eq!(t.get(&a).map(|c| c.raddr), Some(ip6(0, 0x11)));
    // One bit apart in the client's address is another connection.
    assert!(t.get(&key6(1, 11, 1000)).is_none());
    let r = ReplyKey::of(&a, ip6(0, 0x11), 8080);
    assert_eq!(t.by_reply(&r), Some(a));
    assert!(t.has_replies());
    // DR has no reply entry; a second NAT connection with the same reply
    // 5-tuple (another VIP port) could not be told apart.
    assert!(t.by_reply(&ReplyKey::of(&b, ip6(0, 0x11), 8080)).is_none());
    let clash = ConnKey { vport: 81, ..a };
    assert_eq!(
        t.insert(clash, conn6(Forward::Masq)).err(),
        Some(InsertError::ReplyClash)
    );
    assert!(t.remove(&a).is_some());
    assert!(t.by_reply(&r).is_none());
    assert_eq!(t.len(), 1);
}

#[test]
fn a_full_ipv6_table_evicts_its_oldest_one_packet_entry() {
    let mut t = ConnTable::<Ipv6Addr>::new(2);
    let keys: Vec<_> = (0..3).map(|i| key6(2, i, 5000)).collect();
    t.insert(keys[0], conn6(Forward::Route)).unwrap();
    t.insert(keys[1], conn6(Forward::Route)).unwrap();
    t.get_mut(&keys[0]).unwrap();
    let gone = t.insert(keys[2], conn6(Forward::Route)).unwrap();
    assert_eq!(gone.map(|(k, _)| k), Some(keys[1]));
    assert_eq!((t.len(), t.evicted()), (2, 1));
    assert!(t.get(&keys[0]).is_some() && t.get(&keys[2]).is_some());
}

/// A /64 persistence template (ipvsadm's `-M 64` for an IPv6 service):
/// every client of the /64 goes through it, one of another /64 does not.
#[test]
fn an_ipv6_template_covers_its_64_and_counts_its_connections() {
    let svc = ServiceKey {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(VIP6),
        port: 80,
        fwmark: 0,
    };
    let m64 = Ipv6Addr::prefix_mask(64);
    let (a, b, other) = (key6(7, 1, 1000), key6(7, 0xbeef, 2000), key6(8, 1, 1000));
    let tk = a.template_in(m64, &svc);
    assert_eq!((tk.caddr, tk.cport), (ip6(7, 0), 0));
    assert_eq!(b.template_in(m64, &svc), tk);
    assert_ne!(other.template_in(m64, &svc), tk);
    let mut t = ConnTable::<Ipv6Addr>::new(8);
    let mut tpl = conn6(Forward::Route);
    tpl.state = ConnState::Template;
    t.insert(tk, tpl).unwrap();
    assert!(t.get(&tk).is_none(), "a template is not a connection");
    t.insert_controlled(a, conn6(Forward::Route), &tk).unwrap();
    // `b` came before its template was linked (a resync's order).
    t.insert(b, conn6(Forward::Route)).unwrap();
    assert_eq!(t.controls(&tk), 1);
    assert_eq!(t.adopt_orphans(|k| Some(k.template_in(m64, &svc))), 1);
    assert_eq!(t.controls(&tk), 2);
    let (k, c) = t.assure(&a).unwrap();
    assert_eq!((k, c.state), (tk, ConnState::Assured));
    t.remove(&a);
    t.remove(&b);
    assert_eq!(t.controls(&tk), 0);
    // A mark service's template: the mark in the VIP's first 32 bits.
    let mk = ConnKey::mark_template(ip6(7, 0), 100);
    assert_eq!(mk.template_mark(), Some(100));
    assert_eq!(mk.portable().template_mark(), Some(100));
    assert_eq!(a.template_mark(), None);
}

#[test]
fn an_ipv6_table_is_swept_and_listed_in_bounded_steps() {
    let mut t = ConnTable::<Ipv6Addr>::new(100);
    for i in 0..100 {
        t.insert(key6(3, i, 4000 + i), conn6(Forward::Route))
            .unwrap();
    }
    let mut removed = 0;
    loop {
        let s = t.sweep_step(16, 4, |k, _, _| k.caddr.segments()[7] % 2 == 1);
        assert!(s.visited <= 16 && s.removed <= 4);
        removed += s.removed;
        if s.wrapped {
            break;
        }
    }
    assert_eq!((removed, t.len()), (50, 50));
    let (part, next) = t.chunk(0, 10);
    assert_eq!(part.len(), 10);
    assert!(next.is_some());
    assert_eq!(t.iter().count(), 50);
    t.retain(|k, _, _| k.cport < 4010);
    assert_eq!(t.len(), 5);
}

/// The digest sums every entry's term, follows state changes, and is
/// back to nothing when the table is empty; an IPv6 address's bits all
/// count.
#[test]
fn the_ipv6_digest_follows_entries_and_states() {
    let mut t = ConnTable::<Ipv6Addr>::new(8);
    let (a, b) = (key6(4, 1, 1000), key6(4, 2, 1000));
    let c = conn6(Forward::Route);
    t.insert(a, c).unwrap();
    t.insert(b, c).unwrap();
    let term =
        |k: &ConnKey<Ipv6Addr>, c: &Conn<Ipv6Addr>| digest_term(k, c.raddr, c.rport, c.state);
    assert_eq!(t.digest().count, 2);
    assert_eq!(t.digest().sum, term(&a, &c).wrapping_add(term(&b, &c)));
    assert_ne!(term(&a, &c), term(&b, &c));
    let e = t.get_mut(&a).unwrap();
    e.state = ConnState::Tcp(TcpState::FinWait);
    let e = *e;
    t.restated(&a, &e, c.state);
    assert_eq!(t.digest().sum, term(&a, &e).wrapping_add(term(&b, &c)));
    assert_eq!(t.shortest_timeout(&Timeouts::default()), Some(120));
    t.remove(&a);
    t.remove(&b);
    assert_eq!((t.digest().count, t.digest().sum), (0, 0));
}
