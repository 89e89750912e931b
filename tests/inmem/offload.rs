//! Katran's split in memory (`--offload`): which flows the data plane
//! hands to a backend that can forward them itself, when it takes them
//! back, and that what the backend forwarded is counted then.

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::Duration;
use uvs::control::model::{CheckVerdict, FailAction};
use uvs::control::proto::Op;
use uvs::dataplane::LinkParams;
use uvs::io::{FlowTuple, Offloaded};
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::NextHop;
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, dest, one_link, service, svc};
use uvs::wire::MacAddr;

const CLIENT: [u8; 4] = [198, 18, 0, 10];

fn tcp(sport: u16, flags: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4(CLIENT, VIP, 64);
    let t = crate::with_flags(b.tcp(sport, 80, 7, 64000), flags);
    let mut v = Vec::new();
    t.write(&mut v, b"x").unwrap();
    v
}

fn udp(sport: u16) -> Vec<u8> {
    crate::udp_from(CLIENT, sport, 53, b"q")
}

fn tuple(proto: u8, sport: u16, dport: u16) -> FlowTuple {
    FlowTuple {
        saddr: Ipv4Addr::from(CLIENT),
        daddr: Ipv4Addr::from(VIP),
        sport,
        dport,
        proto,
    }
}

fn dr_rig(forward: Forward) -> Rig {
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "rr",
        &[dest(Ipv4Addr::new(198, 18, 0, 11), 80, forward, 1)],
    );
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "rr",
        &[dest(Ipv4Addr::new(198, 18, 0, 11), 53, forward, 1)],
    ));
    offload_rig(&ops)
}

/// A rig of `ops` with the offload on, the program counting 1,000
/// packets for each flow it forwarded.
pub(crate) fn offload_rig(ops: &[Op]) -> Rig {
    offloading(Rig::new(ops))
}

/// Rig `r` with the offload on, as `offload_rig`.
pub(crate) fn offloading(mut r: Rig) -> Rig {
    r.dp.set_offload(true);
    r.io.accept_offload = true;
    r.io.forwarded_each = Offloaded {
        packets: 1000,
        bytes: 64_000,
    };
    r
}

/// Service `i`'s input packets, as the listing counts them.
pub(crate) fn svc_inpkts(r: &Rig, i: usize) -> u64 {
    r.publisher.shared().load().services[i]
        .stats
        .snapshot()
        .inpkts
}

#[test]
fn an_established_tcp_flow_is_handed_over_and_its_fin_takes_it_back() {
    let mut r = dr_rig(Forward::Route);
    let t = tuple(6, 40000, 80);
    assert_eq!(r.feed(tcp(40000, "S")).len(), 1);
    assert!(r.io.offloaded.is_empty(), "not on SYN");
    assert_eq!(r.feed(tcp(40000, "A")).len(), 1);
    let (link, h) = r.io.offloaded[&t];
    assert_eq!((link, h.dmac, h.smac), (0, [2, 0, 0, 0, 1, 11], DIR_MAC));
    // Four times per timeout (900 s established), at most once a minute.
    assert_eq!(h.up_every_ms, 60_000);
    // A frame that still comes up (the periodic one) is forwarded by uvs
    // and writes the entry again with the real server's MAC as it is now.
    r.io.offloaded.get_mut(&t).unwrap().1.dmac = [0; 6];
    assert_eq!(r.feed(tcp(40000, "A")).len(), 1);
    assert_eq!(r.io.offloaded[&t].1.dmac, [2, 0, 0, 0, 1, 11]);
    assert_eq!(r.counter("offloads"), 1, "one flow handed over");
    let before = svc_inpkts(&r, 0);
    // The FIN is forwarded, and takes the flow back with its counts.
    assert_eq!(r.feed(tcp(40000, "AF")).len(), 1);
    assert_eq!(r.io.taken_back, vec![t]);
    assert!(r.io.offloaded.is_empty());
    assert_eq!(svc_inpkts(&r, 0), before + 1 + 1000);
    // Not handed over again while it closes.
    r.feed(tcp(40000, "A"));
    assert!(r.io.offloaded.is_empty());
}

#[test]
fn a_udp_flow_is_handed_over_at_its_second_datagram() {
    let mut r = dr_rig(Forward::Route);
    r.feed(udp(5000));
    assert!(
        r.io.offloaded.is_empty(),
        "a one-packet flow is not worth it"
    );
    r.feed(udp(5000));
    // UDP's 300 s timeout: up to uvs every 60 s.
    assert_eq!(r.io.offloaded[&tuple(17, 5000, 53)].1.up_every_ms, 60_000);
}

/// An IPv4 TUN flow to an IPv4 real server is handed over with the outer
/// header's ends (the tc program wraps it; the XDP backend refuses it),
/// its next hop's MAC as for DR.
#[test]
fn an_ipv4_tun_flow_is_handed_over_with_the_outer_headers_ends() {
    let mut r = dr_rig(Forward::Tunnel);
    r.feed(udp(5000));
    assert!(r.io.offloaded.is_empty());
    assert_eq!(r.feed(udp(5000)).len(), 1, "wrapped by uvs");
    let (link, h) = r.io.offloaded[&tuple(17, 5000, 53)];
    let ends = h.tun.map(|t| (t.src, t.dst));
    let rs = Ipv4Addr::new(198, 18, 0, 11);
    assert_eq!(ends, Some((uvs::rig::DIR_ADDR, rs)));
    assert_eq!((link, h.dmac, h.smac), (0, [2, 0, 0, 0, 1, 11], DIR_MAC));
    // Its TCP flow too, at the ACK; the FIN takes it back.
    let t = tuple(6, 40000, 80);
    r.feed(tcp(40000, "S"));
    r.feed(tcp(40000, "A"));
    assert!(r.io.offloaded[&t].1.tun.is_some());
    r.feed(tcp(40000, "AF"));
    assert_eq!(r.io.taken_back, vec![t]);
}

#[test]
fn nat_other_links_and_a_director_without_offload_keep_their_flows() {
    let mut r = dr_rig(Forward::Masq);
    r.feed(udp(5000));
    r.feed(udp(5000));
    assert!(r.io.offloaded.is_empty(), "NAT");
    let mut r = dr_rig(Forward::Route);
    r.dp.set_offload(false);
    r.feed(udp(5000));
    r.feed(udp(5000));
    assert!(r.io.offloaded.is_empty(), "off");

    // The real server on the second link: only the arrival link can send.
    let links = vec![
        one_link()[0],
        LinkParams {
            mac: MacAddr([2, 0, 0, 0, 0, 3]),
            ..one_link()[0]
        },
    ];
    fn second_link(ip: std::net::IpAddr, _: Forward) -> NextHop {
        NextHop {
            link: 1,
            mac: MacAddr([2, 0, 0, 0, 1, uvs::rig::last_octet(ip)]),
        }
    }
    let ops = service(
        svc(Protocol::Udp, 53),
        "rr",
        &[dest(Ipv4Addr::new(198, 18, 0, 11), 53, Forward::Route, 1)],
    );
    let mut r = Rig::build(links, second_link, Vec::new(), &ops);
    r.dp.set_offload(true);
    r.io.accept_offload = true;
    r.feed(udp(5000));
    assert_eq!(r.feed(udp(5000)).len(), 1, "forwarded by uvs");
    assert!(r.io.offloaded.is_empty());
}

#[test]
fn removing_the_real_server_or_becoming_backup_takes_flows_back() {
    let mut r = dr_rig(Forward::Route);
    for p in [5000, 5001] {
        r.feed(udp(p));
        r.feed(udp(p));
    }
    r.feed(tcp(40000, "S"));
    r.feed(tcp(40000, "A"));
    assert_eq!(r.io.offloaded.len(), 3);
    // A backup forwards nothing: every flow comes back at once.
    r.publisher.set_standby(true);
    r.apply(&[]);
    assert!(r.io.offloaded.is_empty());
    assert_eq!(r.io.taken_back.len(), 3);
    r.publisher.set_standby(false);
    r.apply(&[]);
    r.io.taken_back.clear();
    // Active again: handed over on their next frames.
    r.feed(udp(5000));
    r.feed(tcp(40000, "A"));
    assert_eq!(r.io.offloaded.len(), 2);
    // The UDP service's real server goes: the sweep ends its
    // connections and takes their flows back first.
    r.apply(&[Op::DelDest {
        key: svc(Protocol::Udp, 53),
        addr: Ipv4Addr::new(198, 18, 0, 11).into(),
        port: 53,
    }]);
    for _ in 0..200 {
        if r.io.taken_back.contains(&tuple(17, 5000, 53)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        r.poll();
    }
    assert_eq!(r.io.taken_back, vec![tuple(17, 5000, 53)]);
    assert!(r.io.offloaded.contains_key(&tuple(6, 40000, 80)));
}

/// Polls until the sweep has taken `t` back (a pass after a table change
/// takes about a second).
fn until_taken_back(r: &mut Rig, t: FlowTuple) {
    for _ in 0..400 {
        if r.io.taken_back.contains(&t) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
        r.poll();
    }
    panic!("{t:?} was not taken back");
}

/// The real server's stats as the model (and `-Ln --stats`) has them.
fn dest_inpkts(
    r: &Rig,
    key: uvs::lvs::service::ServiceKey,
    addr: impl Into<std::net::IpAddr>,
) -> u64 {
    let addr = addr.into();
    let snap = r.model.snapshot();
    let s = snap.services.iter().find(|s| s.def.key == key).unwrap();
    s.dests
        .iter()
        .find(|d| d.spec.addr == addr)
        .map_or(0, |d| d.stats.inpkts)
}

/// A UDP service on two real servers (rr) with the offload on, the
/// program counting 1,000 packets for each flow it forwarded, and two
/// flows handed over, one on each server: the rig, the service, the two
/// servers.
fn two_offloaded_udp_flows() -> (Rig, uvs::lvs::service::ServiceKey, Ipv4Addr, Ipv4Addr) {
    let rs1 = Ipv4Addr::new(198, 18, 0, 11);
    let rs2 = Ipv4Addr::new(198, 18, 0, 12);
    let key = svc(Protocol::Udp, 53);
    let mut r = Rig::new(&service(
        key,
        "rr",
        &[
            dest(rs1, 53, Forward::Route, 1),
            dest(rs2, 53, Forward::Route, 1),
        ],
    ));
    r.dp.set_offload(true);
    r.io.accept_offload = true;
    r.io.forwarded_each = Offloaded {
        packets: 1000,
        bytes: 64_000,
    };
    for p in [5000, 5001] {
        r.feed(udp(p));
        r.feed(udp(p));
    }
    assert_eq!(r.io.offloaded.len(), 2);
    (r, key, rs1, rs2)
}

/// Defect 3: a real server removed while its flow is offloaded (`-d`, or
/// a health check's `remove`) takes the flow back only when the sweep
/// reaches it, after the table lost the server; what the program
/// forwarded still counts for the service (and, for a health check's
/// removal, for the server when it is back), as without the program.
#[test]
fn a_removed_real_servers_offloaded_packets_stay_in_the_service_counters() {
    let (mut r, key, rs1, rs2) = two_offloaded_udp_flows();
    let on = |r: &Rig, p: u16| match r.io.offloaded[&tuple(17, p, 53)].1.dmac[5] {
        11 => rs1,
        _ => rs2,
    };
    let (first, second) = (on(&r, 5000), on(&r, 5001));
    let first = std::net::IpAddr::from(first);
    assert_ne!(first, second, "rr: one flow on each");
    assert_eq!(svc_inpkts(&r, 0), 4);

    // A health check's removal: the server leaves the table but stays in
    // the model, counters and all.
    assert!(r.model.apply_check(
        &key,
        first,
        53,
        CheckVerdict::Down(Some(FailAction::Remove))
    ));
    r.publisher.publish(&r.model, &r.routes);
    until_taken_back(&mut r, tuple(17, 5000, 53));
    assert_eq!(svc_inpkts(&r, 0), 4 + 1000);
    assert!(
        r.model
            .apply_check(&key, first, 53, CheckVerdict::Down(None))
    );
    r.publisher.publish(&r.model, &r.routes);
    r.poll();
    assert_eq!(
        dest_inpkts(&r, key, first),
        2 + 1000,
        "back, with its count"
    );

    // `uvsadm -d`: the server's row is gone; the service keeps the count.
    r.apply(&[Op::DelDest {
        key,
        addr: second.into(),
        port: 53,
    }]);
    until_taken_back(&mut r, tuple(17, 5001, 53));
    assert_eq!(svc_inpkts(&r, 0), 4 + 2000);
}

/// Becoming a backup in the same change that removes a real server: both
/// flows come back at once, the removed server's and the one whose
/// server moved in the table, and both counts reach the service.
#[test]
fn a_backup_takes_back_flows_of_moved_and_removed_servers_with_their_counts() {
    let (mut r, key, rs1, rs2) = two_offloaded_udp_flows();
    // rs2 is listed first (newest first): removing it moves rs1.
    r.publisher.set_standby(true);
    r.apply(&[Op::DelDest {
        key,
        addr: rs2.into(),
        port: 53,
    }]);
    assert_eq!(r.io.taken_back.len(), 2);
    assert_eq!(svc_inpkts(&r, 0), 4 + 2000);
    assert_eq!(dest_inpkts(&r, key, rs1), 2 + 1000);
}
