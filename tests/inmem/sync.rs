//! Connection sync between two data planes, through the in-memory
//! backend: what the active one queues, applied to a standby one, gives
//! the same table (by digest), and the backup, once active, continues
//! every connection on the same real server; a full resync drops what
//! the active one no longer has; a backup's synced timers stand still.

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::sync::mpsc::{Receiver, sync_channel};
use uvs::control::proto::Op;
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::sync::{Record, SyncEvent};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, dest, service, svc};

fn ops() -> Vec<Op> {
    let rs = |last, port| dest(Ipv4Addr::new(198, 18, 0, last), port, Forward::Route, 1);
    let mut ops = service(svc(Protocol::Tcp, 80), "rr", &[rs(11, 80), rs(12, 80)]);
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "rr",
        &[rs(11, 53), rs(12, 53)],
    ));
    ops
}

pub(crate) fn tcp(sport: u16, syn: bool, fin: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4([198, 18, 0, 10], VIP, 64);
    let b = match (syn, fin) {
        (true, _) => b.tcp(sport, 80, 1, 64000).syn(),
        (false, true) => b.tcp(sport, 80, 2, 64000).ack(1).fin(),
        (false, false) => b.tcp(sport, 80, 2, 64000).ack(1),
    };
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

fn udp(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 18, 0, 10], VIP, 64)
        .udp(sport, 53)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// The destination MAC of the one frame sent.
pub(crate) fn sent_to(out: &[Vec<u8>]) -> [u8; 6] {
    assert_eq!(out.len(), 1, "one frame forwarded");
    out[0][0..6].try_into().unwrap()
}

/// The records queued on `rx` so far.
pub(crate) fn records(rx: &Receiver<SyncEvent>) -> Vec<Record> {
    rx.try_iter()
        .filter_map(|e| match e {
            SyncEvent::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn pair() -> (Rig, Rig, Receiver<SyncEvent>) {
    pair_of(&ops())
}

/// With the table `ops`: an active data plane that queues its changes
/// on the receiver, and a standby one.
pub(crate) fn pair_of(ops: &[Op]) -> (Rig, Rig, Receiver<SyncEvent>) {
    let mut a = Rig::new(ops);
    let (tx, rx) = sync_channel(4096);
    a.dp.set_sync(tx);
    let mut b = Rig::new(ops);
    b.publisher.set_standby(true);
    b.apply(&[]);
    (a, b, rx)
}

#[test]
fn a_synced_backup_has_the_same_table_and_continues_every_connection() {
    let (mut a, mut b, rx) = pair();
    let mut went = Vec::new();
    for p in 0..30u16 {
        went.push(sent_to(&a.feed(tcp(40000 + p, true, false))));
        a.feed(tcp(40000 + p, false, false));
    }
    for p in 0..5u16 {
        a.feed(tcp(40000 + p, false, true));
    }
    for p in 0..20u16 {
        a.feed(udp(50000 + p));
    }
    let recs = records(&rx);
    // New connections and state changes only, not every packet: 30
    // SYNs, 30 handshakes completed, 5 FINs, 20 UDP flows.
    assert_eq!(recs.len(), 30 + 30 + 5 + 20, "{recs:?}");
    assert_eq!(b.dp.apply_sync(&recs), recs.len());
    assert_eq!(b.dp.digest(), a.dp.digest());
    assert_eq!(b.dp.conn_count(), 50);
    // A standby table's timers stand still: nothing expires there.
    b.dp.expire(u64::MAX / 2);
    assert_eq!(b.dp.conn_count(), 50);
    // A backup forwards nothing...
    assert!(b.feed(tcp(40010, false, false)).is_empty());
    // ...until it takes over: then every connection continues mid-flow
    // on the real server it had.
    b.publisher.set_standby(false);
    b.apply(&[]);
    for p in 0..30u16 {
        assert_eq!(
            sent_to(&b.feed(tcp(40000 + p, false, false))),
            went[p as usize],
            "port {p}"
        );
    }
    assert_eq!(b.counter("no_conn_dropped"), 0);
}

#[test]
fn removals_are_synced_and_a_resync_drops_what_the_active_one_no_longer_has() {
    let (mut a, mut b, rx) = pair();
    for p in 0..10u16 {
        a.feed(udp(50000 + p));
    }
    b.dp.apply_sync(&records(&rx));
    // The active one's entries expire: the removals follow.
    a.dp.expire(u64::MAX / 2);
    assert_eq!(a.dp.conn_count(), 0);
    let gone = records(&rx);
    assert_eq!(gone.len(), 10);
    assert!(gone.iter().all(|r| matches!(r, Record::Remove(_))));
    b.dp.apply_sync(&gone);
    assert_eq!(b.dp.conn_count(), 0);
    assert_eq!(b.dp.digest(), a.dp.digest());

    // Lost messages: the backup has entries the active one has not, and
    // lacks others. A full resync repairs both.
    for p in 0..6u16 {
        a.feed(udp(51000 + p));
    }
    let recs = records(&rx);
    b.dp.apply_sync(&recs[..3]);
    for p in 0..4u16 {
        let mut stray = Rig::new(&ops());
        let (tx, srx) = sync_channel(16);
        stray.dp.set_sync(tx);
        stray.feed(udp(52000 + p));
        b.dp.apply_sync(&records(&srx));
    }
    assert_eq!(b.dp.conn_count(), 7);
    assert_ne!(b.dp.digest(), a.dp.digest());
    b.dp.resync_begin();
    let mut from = Some(0);
    while let Some(f) = from {
        let (chunk, next) = a.dp.sync_chunk(f, 2, 1);
        let ups: Vec<Record> = chunk.into_iter().map(Record::Upsert).collect();
        b.dp.apply_sync(&ups);
        from = next;
    }
    assert_eq!(b.dp.resync_end(), 4);
    assert_eq!(b.dp.conn_count(), 6);
    assert_eq!(b.dp.digest(), a.dp.digest());
    // The marks went into the queue, in order with the records.
    assert!(rx.try_iter().any(|e| e == SyncEvent::Mark(1)));
}
