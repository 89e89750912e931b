//! Katran's split for IPv6 (`--offload`), in memory: established IPv6 DR
//! flows are handed to the backend's program by the same rules as IPv4's
//! (`offload.rs`), into its IPv6 map, and taken back alike (FIN, a real
//! server removed, becoming a backup) with what the program forwarded
//! counted then.

use crate::dr6::{CLIENT6, rs6, udp6};
use crate::offload::{offload_rig, svc_inpkts};
use etherparse::PacketBuilder;
use std::net::Ipv6Addr;
use std::time::Duration;
use uvs::control::proto::Op;
use uvs::io::FlowTuple;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP6, dest, service};

/// A client's TCP segment to `[VIP6]:80` with `flags` (as `with_flags`).
fn tcp6(sport: u16, flags: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv6(CLIENT6.octets(), VIP6.octets(), 64);
    let t = crate::with_flags(b.tcp(sport, 80, 7, 64000), flags);
    let mut v = Vec::new();
    t.write(&mut v, b"x").unwrap();
    v
}

fn tuple6(proto: u8, sport: u16, dport: u16) -> FlowTuple<Ipv6Addr> {
    FlowTuple {
        saddr: CLIENT6,
        daddr: VIP6,
        sport,
        dport,
        proto,
    }
}

/// TCP `[VIP6]:80` and UDP `[VIP6]:53` on one IPv6 real server by
/// `forward`, the offload on, the program counting 1,000 packets for
/// each flow it forwarded.
fn rig6(forward: Forward) -> Rig {
    let mut ops = Vec::new();
    for (proto, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 53)] {
        let key = ServiceKey::addr(proto, VIP6, port);
        ops.extend(service(key, "rr", &[dest(rs6(0x11), port, forward, 1)]));
    }
    offload_rig(&ops)
}

#[test]
fn an_established_ipv6_tcp_flow_is_handed_over_and_its_fin_takes_it_back() {
    let mut r = rig6(Forward::Route);
    let t = tuple6(6, 40000, 80);
    assert_eq!(r.feed(tcp6(40000, "S")).len(), 1);
    assert!(r.io.offloaded6.is_empty(), "not on SYN");
    assert_eq!(r.feed(tcp6(40000, "A")).len(), 1);
    let (link, h) = r.io.offloaded6[&t];
    assert_eq!((link, h.dmac, h.smac), (0, [2, 0, 0, 0, 1, 0x11], DIR_MAC));
    assert_eq!(h.up_every_ms, 60_000);
    assert!(r.io.offloaded.is_empty(), "not in the IPv4 map");
    // The periodic frame writes the entry again.
    r.io.offloaded6.get_mut(&t).unwrap().1.dmac = [0; 6];
    assert_eq!(r.feed(tcp6(40000, "A")).len(), 1);
    assert_eq!(r.io.offloaded6[&t].1.dmac, [2, 0, 0, 0, 1, 0x11]);
    assert_eq!(r.counter("offloads"), 1);
    let before = svc_inpkts(&r, 0);
    // The FIN is forwarded and takes the flow back with its counts.
    assert_eq!(r.feed(tcp6(40000, "AF")).len(), 1);
    assert_eq!(r.io.taken_back6, vec![t]);
    assert!(r.io.offloaded6.is_empty());
    assert_eq!(svc_inpkts(&r, 0), before + 1 + 1000);
    r.feed(tcp6(40000, "A"));
    assert!(r.io.offloaded6.is_empty(), "not again while it closes");
}

#[test]
fn an_ipv6_udp_flow_is_handed_over_at_its_second_datagram_and_nat66_and_tun_keep_theirs() {
    let mut r = rig6(Forward::Route);
    r.feed(udp6(5000));
    assert!(r.io.offloaded6.is_empty());
    r.feed(udp6(5000));
    assert_eq!(r.io.offloaded6[&tuple6(17, 5000, 53)].1.up_every_ms, 60_000);
    for forward in [Forward::Masq, Forward::Tunnel] {
        let mut r = rig6(forward);
        r.feed(udp6(5000));
        r.feed(udp6(5000));
        assert!(r.io.offloaded6.is_empty(), "{forward:?}");
    }
}

#[test]
fn a_backup_or_a_removed_real_server_takes_ipv6_flows_back_with_their_counts() {
    let mut r = rig6(Forward::Route);
    r.feed(udp6(5000));
    r.feed(udp6(5000));
    r.feed(tcp6(40000, "S"));
    r.feed(tcp6(40000, "A"));
    assert_eq!(r.io.offloaded6.len(), 2);
    r.publisher.set_standby(true);
    r.apply(&[]);
    assert!(r.io.offloaded6.is_empty());
    assert_eq!(r.io.taken_back6.len(), 2);
    assert_eq!(svc_inpkts(&r, 1), 2 + 1000, "the UDP service");
    r.publisher.set_standby(false);
    r.apply(&[]);
    r.io.taken_back6.clear();
    r.feed(udp6(5000));
    assert_eq!(r.io.offloaded6.len(), 1, "handed over again");
    // The real server goes: the sweep takes the flow back first.
    r.apply(&[Op::DelDest {
        key: ServiceKey::addr(Protocol::Udp, VIP6, 53),
        addr: rs6(0x11).into(),
        port: 53,
    }]);
    let t = tuple6(17, 5000, 53);
    for _ in 0..400 {
        if r.io.taken_back6.contains(&t) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        r.poll();
    }
    assert_eq!(r.io.taken_back6, vec![t]);
    assert_eq!(svc_inpkts(&r, 1), 3 + 2000);
}
