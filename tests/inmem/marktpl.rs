//! A firewall-mark service's persistence templates in memory: one per
//! client network and mark (IPVS's `<IPPROTO_IP, caddr&mask, 0, fwmark,
//! 0>`), shared by the mark's ports, listed as ipvsadm lists it; carried
//! over the sync wire to a backup (stream and full resync, connections
//! before their template) and handed over on `--takeover`, so the
//! client keeps its real server through either.

use std::net::Ipv4Addr;
use std::sync::mpsc::{Receiver, sync_channel};
use uvs::control::proto::{Op, ServiceDef};
use uvs::ha::sync::{Body, SyncMsg};
use uvs::lvs::mark::{MarkRule, parse_ports};
use uvs::lvs::service::{Forward, Persistence, Protocol, ServiceKey};
use uvs::lvs::sync::{Record, SyncEvent};
use uvs::rig::{Rig, VIP, dest};

const MARK: u32 = 100;
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const OTHER: [u8; 4] = [198, 18, 1, 20];
const KEY: &[u8] = b"a key of sixteen bytes";

/// Mark 100 = TCP VIP:80,443; `-A -f 100 -s rr -p 60` over two real
/// servers without ports.
fn ops() -> Vec<Op> {
    let key = ServiceKey::mark(MARK);
    let rs = |last| dest(Ipv4Addr::new(198, 18, 0, last), 0, Forward::Route, 1);
    vec![
        Op::SetMark {
            mark: MARK,
            rules: vec![MarkRule {
                protocol: Some(Protocol::Tcp),
                vip: VIP.into(),
                ports: parse_ports("80,443").unwrap(),
            }],
        },
        Op::AddService(ServiceDef {
            key,
            scheduler: "rr".into(),
            flags: Default::default(),
            persistent: Some(Persistence::new(60)),
            ops: false,
        }),
        Op::AddDest { key, dest: rs(11) },
        Op::AddDest { key, dest: rs(12) },
    ]
}

/// A connection from `client`:`sport` to VIP:`dport` (SYN, then ACK:
/// established, its template assured); the last octet of the real server
/// it went to (the rig's MACs end with it).
fn syn(r: &mut Rig, client: [u8; 4], sport: u16, dport: u16) -> u8 {
    let mut to = Vec::new();
    for flags in ["S", "A"] {
        let mut v = Vec::new();
        let b = etherparse::PacketBuilder::ethernet2(uvs::rig::CL_MAC, uvs::rig::DIR_MAC)
            .ipv4(client, VIP, 64);
        crate::with_flags(b.tcp(sport, dport, 1, 64000), flags)
            .write(&mut v, b"")
            .unwrap();
        let out = r.feed(v);
        assert_eq!(out.len(), 1, "one frame forwarded");
        to.push(out[0][5]);
    }
    assert_eq!(to[0], to[1]);
    to[0]
}

/// The records queued so far, through the sync wire and back.
fn over_the_wire(rx: &Receiver<SyncEvent>) -> Vec<Record> {
    super::sync::records(rx)
        .chunks(uvs::ha::sync::MAX_RECORDS)
        .flat_map(|c| {
            let m = SyncMsg {
                boot: 1,
                seq: 1,
                sent_ms: 1,
                body: Body::Records(c.to_vec()),
            };
            match SyncMsg::parse(&m.emit(KEY), KEY).unwrap().body {
                Body::Records(r) => r,
                b => panic!("{b:?}"),
            }
        })
        .collect()
}

fn standby() -> Rig {
    let mut b = Rig::new(&ops());
    b.publisher.set_standby(true);
    b.apply(&[]);
    b
}

fn activate(b: &mut Rig) {
    b.publisher.set_standby(false);
    b.apply(&[]);
}

/// An active director where OTHER opened port 80, then CLIENT ports 80
/// and 443: CLIENT's server (rr's second pick, so a director that lost
/// the template would give it the other), and the sync queue.
fn active() -> (Rig, u8, Receiver<SyncEvent>) {
    let mut a = Rig::new(&ops());
    let (tx, rx) = sync_channel(4096);
    a.dp.set_sync(tx);
    let first = syn(&mut a, OTHER, 40000, 80);
    let pinned = syn(&mut a, CLIENT, 40000, 80);
    assert_ne!(first, pinned, "rr: the next one");
    for p in 1..10 {
        let port = [80, 443][p as usize % 2];
        assert_eq!(syn(&mut a, CLIENT, 40000 + p, port), pinned);
    }
    (a, pinned, rx)
}

/// After the handover or failover: CLIENT's new connections on both
/// ports keep its server.
fn keeps(r: &mut Rig, pinned: u8) {
    for (i, port) in [80, 443, 443, 80].into_iter().enumerate() {
        assert_eq!(syn(r, CLIENT, 50000 + i as u16, port), pinned);
    }
}

#[test]
fn one_template_per_client_and_mark_listed_as_ipvsadm_does() {
    let (a, pinned, _rx) = active();
    let tpl: Vec<_> = (a.dp.conn_list().into_iter())
        .filter(|c| c.cport == 0)
        .collect();
    assert_eq!(tpl.len(), 2, "one per client: {tpl:?}");
    let t = tpl
        .iter()
        .find(|c| c.caddr == Ipv4Addr::from(CLIENT))
        .unwrap();
    assert_eq!(t.protocol, Protocol::Ip);
    assert_eq!((t.vaddr, t.vport), (Ipv4Addr::from(MARK).into(), 0));
    assert_eq!(
        (t.daddr, t.dport),
        (Ipv4Addr::new(198, 18, 0, pinned).into(), 0)
    );
    let mut line = String::new();
    uvs::admin::format::conn_line(&mut line, t, true);
    let want = format!("ASSURED     198.18.0.10:0      0.0.0.100:0        198.18.0.{pinned}:0\n");
    assert!(line.starts_with("IP  0") && line.ends_with(&want), "{line}");
}

#[test]
fn the_sync_stream_keeps_a_mark_clients_server_through_failover() {
    let (a, pinned, rx) = active();
    let mut b = standby();
    let recs = over_the_wire(&rx);
    assert_eq!(b.dp.apply_sync(&recs), recs.len(), "every record applies");
    assert_eq!(b.dp.digest(), a.dp.digest());
    activate(&mut b);
    keeps(&mut b, pinned);
}

#[test]
fn a_full_resync_links_connections_sent_before_their_mark_template() {
    let (mut a, pinned, _rx) = active();
    let mut b = standby();
    b.dp.resync_begin();
    let (mut chunk, next) = a.dp.sync_chunk(0, 64, 1);
    // The IPv4 table's all; the IPv6 one's, next, is empty.
    let rest = next.map(|n| a.dp.sync_chunk(n, 64, 1));
    assert_eq!(rest, Some((Vec::new(), None)));
    chunk.sort_by_key(|p| p.is_template());
    let recs: Vec<Record> = chunk.into_iter().map(Record::Upsert).collect();
    let (tx, rx) = sync_channel(4096);
    for r in &recs {
        tx.send(SyncEvent::Record(*r)).unwrap();
    }
    let recs = over_the_wire(&rx);
    assert_eq!(b.dp.apply_sync(&recs), recs.len());
    assert_eq!(b.dp.resync_end(), 0);
    assert_eq!(b.dp.digest(), a.dp.digest());
    activate(&mut b);
    // Past the template's 60 s, long before the established
    // connections' 900 s: linked, it still controls them, so it stays.
    b.dp.expire(100_000);
    keeps(&mut b, pinned);
}

#[test]
fn a_takeover_hands_the_mark_template_over() {
    let (a, pinned, _rx) = active();
    let conns = a.dp.export_conns();
    let tpl = conns.iter().filter(|p| p.is_template()).count();
    assert_eq!(tpl, 2);
    assert!(conns.iter().all(|p| !p.is_template() || p.fwmark == MARK));
    let mut c = Rig::new(&ops());
    assert_eq!(c.dp.take_over(&mut c.io, &conns), conns.len());
    assert_eq!(c.dp.digest(), a.dp.digest());
    keeps(&mut c, pinned);
}
