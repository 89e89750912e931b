//! Persistence templates in memory: an offloaded connection keeps its
//! client's template alive past the persistence timeout (the program
//! forwards its packets, uvs sees none, and the template still controls
//! it), and a backup whose full resync brought a connection before its
//! template links them, so after a takeover the template does not expire
//! under the connection either.

use std::net::Ipv4Addr;
use std::sync::mpsc::sync_channel;
use uvs::control::proto::Op;
use uvs::control::proto::ServiceDef;
use uvs::io::FlowTuple;
use uvs::lvs::service::{Forward, Persistence, Protocol};
use uvs::lvs::sync::Record;
use uvs::rig::{Rig, VIP, dest, service, svc};

const CLIENT: [u8; 4] = [198, 18, 0, 10];
/// Clients of other networks, never pinned here.
const OTHERS: [[u8; 4]; 2] = [[198, 18, 1, 20], [198, 18, 2, 20]];

/// A datagram to VIP:53 from `client`:`sport`.
fn datagram(client: [u8; 4], sport: u16) -> Vec<u8> {
    crate::udp_from(client, sport, 53, b"p")
}

/// The last octet of the real server the one frame forwarded went to
/// (the rig's MACs end with it).
fn server_of(out: &[Vec<u8>]) -> u8 {
    assert_eq!(out.len(), 1, "one frame forwarded");
    out[0][5]
}

/// UDP VIP:53, rr over two real servers, persistent for 2 s.
fn persistent_rig() -> Rig {
    let key = svc(Protocol::Udp, 53);
    let rs = |last| dest(Ipv4Addr::new(198, 18, 0, last), 53, Forward::Route, 1);
    let mut ops = service(key, "rr", &[rs(11), rs(12)]);
    ops[0] = Op::AddService(ServiceDef {
        key,
        scheduler: "rr".into(),
        flags: Default::default(),
        persistent: Some(Persistence::new(2)),
        ops: false,
    });
    Rig::new(&ops)
}

fn templates(r: &Rig) -> usize {
    r.dp.export_conns()
        .iter()
        .filter(|p| p.is_template())
        .count()
}

/// Well past the template's timer (and its 60 s again) and before the
/// UDP connection's 300 s: the template lives while its connection
/// does. A new connection of the client keeps its server; two of other
/// networks are scheduled afresh (rr: one on each server).
fn template_outlives_its_timer(r: &mut Rig, pinned: u8) {
    r.dp.expire(100_000);
    assert_eq!(templates(r), 1, "the template still controls a connection");
    assert_eq!(server_of(&r.feed(datagram(CLIENT, 5001))), pinned);
    let fresh = OTHERS.map(|o| server_of(&r.feed(datagram(o, 5000))));
    assert!(fresh.contains(&pinned) && fresh[0] != fresh[1], "{fresh:?}");
}

#[test]
fn an_offloaded_connection_keeps_its_template_past_the_timeout() {
    let mut r = persistent_rig();
    r.dp.set_offload(true);
    r.io.accept_offload = true;
    let pinned = server_of(&r.feed(datagram(CLIENT, 5000)));
    r.feed(datagram(CLIENT, 5000));
    let flow = FlowTuple {
        saddr: Ipv4Addr::from(CLIENT),
        daddr: Ipv4Addr::from(VIP),
        sport: 5000,
        dport: 53,
        proto: 17,
    };
    assert!(r.io.offloaded.contains_key(&flow), "handed over");
    assert_eq!(templates(&r), 1);
    template_outlives_its_timer(&mut r, pinned);
    assert!(r.io.offloaded.contains_key(&flow), "still offloaded");
    // Every connection ends (300 s), then the template, idle, at its
    // next timer.
    r.dp.expire(1_000_000);
    r.dp.expire(2_000_000);
    assert_eq!(templates(&r), 0);
}

#[test]
fn a_resync_that_brings_a_connection_before_its_template_links_them() {
    let mut a = persistent_rig();
    let (tx, _rx) = sync_channel(64);
    a.dp.set_sync(tx);
    let pinned = server_of(&a.feed(datagram(CLIENT, 5000)));
    let mut b = persistent_rig();
    b.publisher.set_standby(true);
    b.apply(&[]);
    // The whole table, connections first (slot order can give that).
    b.dp.resync_begin();
    let (mut chunk, next) = a.dp.sync_chunk(0, 16, 1);
    // The IPv4 table's all; the IPv6 one's, next, is empty.
    let rest = next.map(|n| a.dp.sync_chunk(n, 16, 1));
    assert_eq!(rest, Some((Vec::new(), None)));
    chunk.sort_by_key(|p| p.is_template());
    assert!(chunk[1].is_template(), "{chunk:?}");
    let recs: Vec<Record> = chunk.into_iter().map(Record::Upsert).collect();
    assert_eq!(b.dp.apply_sync(&recs), 2);
    assert_eq!(b.dp.resync_end(), 0);
    assert_eq!(b.dp.digest(), a.dp.digest());
    // B takes over; the template does not expire under the connection.
    b.publisher.set_standby(false);
    b.apply(&[]);
    template_outlives_its_timer(&mut b, pinned);
}

/// A template whose real server is removed while it still controls a
/// connection leads the client's next connections to another server, as
/// one entry: a second template under the same key would let a peer's
/// removal of the first take the second.
#[test]
fn a_template_whose_server_goes_under_a_connection_stays_one_entry() {
    let mut r = persistent_rig();
    let pinned = server_of(&r.feed(datagram(CLIENT, 5000)));
    assert_eq!(r.dp.conn_count(), 2, "the connection and its template");
    r.apply(&[Op::DelDest {
        key: svc(Protocol::Udp, 53),
        addr: Ipv4Addr::new(198, 18, 0, pinned).into(),
        port: 53,
    }]);
    let other = server_of(&r.feed(datagram(CLIENT, 5001)));
    assert_ne!(other, pinned);
    // The old connection (until the sweep ends it), the new one, and one
    // template.
    assert_eq!(r.dp.conn_count(), 3);
    assert_eq!(server_of(&r.feed(datagram(CLIENT, 5002))), other);
    assert_eq!(templates(&r), 1);
}
