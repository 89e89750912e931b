//! IPv6 persistence in memory: a persistent IPv6 service with `-M 64`
//! pins a client's /64 to one real server through a template keyed by
//! the masked address, schedules another /64 anew, and lets the template
//! expire after its timeout once no connection holds it; a port-0
//! service's template covers every port. A template is assured when its
//! connection is established, and handed to a backup by sync.

use crate::dr6::rs6;
use etherparse::PacketBuilder;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::mpsc::sync_channel;
use uvs::control::proto::{Op, ServiceDef};
use uvs::lvs::conn::{ConnState, PortableConn};
use uvs::lvs::service::{Forward, Persistence, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP6, dest, service};

/// A client in network 2001:2:0:`net`::/64, host `host`.
fn client(net: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host)
}

/// A TCP segment (SYN, or ACK) or a UDP datagram from `from`:`sport` to
/// `[VIP6]:dport`.
fn frame(proto: Protocol, from: Ipv6Addr, sport: u16, dport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv6(from.octets(), VIP6.octets(), 64);
    let mut v = Vec::new();
    match proto {
        Protocol::Udp => b.udp(sport, dport).write(&mut v, b"q").unwrap(),
        _ => {
            let t = b.tcp(sport, dport, 1000, 64240);
            let t = if syn { t.syn() } else { t.ack(1) };
            t.write(&mut v, b"").unwrap()
        }
    }
    v
}

/// The real server (last byte of its MAC) the one forwarded frame went to.
fn server_of(out: &[Vec<u8>]) -> u8 {
    assert_eq!(out.len(), 1, "one frame forwarded");
    out[0][5]
}

/// `[VIP6]:port`, rr over two real servers by DR, persistent for
/// `timeout` seconds by /`prefix`.
fn rig(proto: Protocol, port: u16, timeout: u32, prefix: u8) -> Rig {
    let key = ServiceKey::addr(proto, VIP6, port);
    let ds = [
        dest(rs6(0x11), port, Forward::Route, 1),
        dest(rs6(0x12), port, Forward::Route, 1),
    ];
    let mut ops = service(key, "rr", &ds);
    ops[0] = Op::AddService(ServiceDef {
        key,
        scheduler: "rr".into(),
        flags: Default::default(),
        persistent: Some(Persistence {
            prefix6: prefix,
            ..Persistence::new(timeout)
        }),
        ops: false,
    });
    Rig::new(&ops)
}

fn templates(r: &Rig) -> Vec<PortableConn> {
    r.dp.export_conns()
        .into_iter()
        .filter(|p| p.is_template())
        .collect()
}

#[test]
fn one_64_sticks_to_one_real_server_and_another_is_scheduled_anew() {
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let mut r = rig(proto, 80, 600, 64);
        let pinned = server_of(&r.feed(frame(proto, client(1, 0x10), 40000, 80, true)));
        // Other hosts and ports of the /64: the same server, one template.
        for (host, sport) in [(0x10, 40001), (0x20, 40000), (0xffff, 50000), (7, 1)] {
            let f = frame(proto, client(1, host), sport, 80, true);
            assert_eq!(server_of(&r.feed(f)), pinned, "{proto:?} host {host:x}");
        }
        let t = templates(&r);
        assert_eq!(t.len(), 1, "{t:?}");
        let want = (IpAddr::V6(client(1, 0)), 0, IpAddr::V6(VIP6), 80);
        assert_eq!((t[0].caddr, t[0].cport, t[0].vaddr, t[0].vport), want);
        assert_eq!(t[0].protocol, proto);
        // Two other /64s: rr goes on, one to each server.
        let others =
            [2, 3].map(|n| server_of(&r.feed(frame(proto, client(n, 0x10), 40000, 80, true))));
        assert!(
            others.contains(&pinned) && others[0] != others[1],
            "{others:?}"
        );
        assert_eq!(templates(&r).len(), 3);
        // ... and each sticks in turn.
        for (n, s) in [2, 3].into_iter().zip(others) {
            let f = frame(proto, client(n, 0x99), 40009, 80, true);
            assert_eq!(server_of(&r.feed(f)), s);
        }
    }
}

/// Without `-M` an IPv6 service's client network is the whole address.
#[test]
fn by_default_each_address_is_its_own_network() {
    let mut r = rig(Protocol::Udp, 53, 600, 128);
    let a = server_of(&r.feed(frame(Protocol::Udp, client(1, 0x10), 5000, 53, true)));
    let b = server_of(&r.feed(frame(Protocol::Udp, client(1, 0x11), 5000, 53, true)));
    assert_ne!(a, b, "rr: a neighbour of the /64 is another network");
    let again = server_of(&r.feed(frame(Protocol::Udp, client(1, 0x10), 5001, 53, true)));
    assert_eq!(again, a);
    let t = templates(&r);
    assert_eq!(t.len(), 2);
    assert!(t.iter().any(|t| t.caddr == IpAddr::V6(client(1, 0x10))));
}

/// A template outlives its timer while a connection holds it; once the
/// connections are gone it expires, and the /64's next connection is
/// scheduled anew (rr: the other server).
#[test]
fn a_template_expires_after_its_connections_and_its_timeout() {
    let mut r = rig(Protocol::Udp, 53, 2, 64);
    let pinned = server_of(&r.feed(frame(Protocol::Udp, client(1, 0x10), 5000, 53, true)));
    // Past the template's 2 s, not the datagram's 300 s: still held.
    r.dp.expire(100_000);
    assert_eq!(templates(&r).len(), 1);
    let f = frame(Protocol::Udp, client(1, 0x20), 5000, 53, true);
    assert_eq!(server_of(&r.feed(f)), pinned);
    // Every connection gone, then the idle template.
    r.dp.expire(1_000_000);
    r.dp.expire(2_000_000);
    assert_eq!(templates(&r).len(), 0);
    assert_eq!(r.dp.conn_count(), 0);
    let f = frame(Protocol::Udp, client(1, 0x30), 5000, 53, true);
    assert_ne!(server_of(&r.feed(f)), pinned, "scheduled anew");
}

/// A persistent port-0 service (every port of the VIP): one template of
/// port 0 per /64 covers them all, as IPVS keys it.
#[test]
fn a_port_0_service_pins_every_port_of_the_vip() {
    let mut r = rig(Protocol::Tcp, 0, 600, 64);
    let pinned = server_of(&r.feed(frame(Protocol::Tcp, client(1, 1), 40000, 80, true)));
    for dport in [443, 22, 8080] {
        let f = frame(Protocol::Tcp, client(1, 2), 40000, dport, true);
        assert_eq!(server_of(&r.feed(f)), pinned, "port {dport}");
    }
    let t = templates(&r);
    assert_eq!((t.len(), t[0].vport), (1, 0));
    let f = frame(Protocol::Tcp, client(2, 1), 40000, 443, true);
    assert_ne!(server_of(&r.feed(f)), pinned);
}

/// The template is assured when its first connection is established
/// (the client's ACK after its SYN, by DR), and a backup that applies
/// the synced records has the template too: after a takeover the /64
/// keeps its real server.
#[test]
fn templates_are_assured_and_synced_to_a_backup() {
    let mut a = rig(Protocol::Tcp, 80, 600, 64);
    let (tx, rx) = sync_channel(64);
    a.dp.set_sync(tx);
    let pinned = server_of(&a.feed(frame(Protocol::Tcp, client(1, 1), 40000, 80, true)));
    assert_eq!(templates(&a)[0].state, ConnState::Template);
    server_of(&a.feed(frame(Protocol::Tcp, client(1, 1), 40000, 80, false)));
    assert_eq!(templates(&a)[0].state, ConnState::Assured);
    let recs = super::sync::records(&rx);
    let mut b = rig(Protocol::Tcp, 80, 600, 64);
    b.publisher.set_standby(true);
    b.apply(&[]);
    assert!(b.dp.apply_sync(&recs) >= 2, "{recs:?}");
    let t = templates(&b);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].caddr, t[0].state),
        (IpAddr::V6(client(1, 0)), ConnState::Assured)
    );
    assert_eq!(b.dp.digest(), a.dp.digest());
    b.publisher.set_standby(false);
    b.apply(&[]);
    let f = frame(Protocol::Tcp, client(1, 9), 41000, 80, true);
    assert_eq!(server_of(&b.feed(f)), pinned);
}

/// An IPv6 firewall-mark service (`-f 7 -6`): mark 7's IPv6 rule
/// (TCP and UDP to `[VIP6]`:80,443) leads to it, its IPv4 rule to the
/// IPv4 service of the mark (`-f 7`). Persistent by /64, one template of
/// protocol IP per client network carries both ports and both protocols,
/// its virtual address the mark (IPVS's `<IPPROTO_IP, caddr&mask, 0,
/// fwmark, 0>`). A port the mark does not name is not the director's.
#[test]
fn a_marks_ipv6_rules_lead_to_its_ipv6_service() {
    use uvs::lvs::mark::{MarkRule, parse_ports};
    let (m4, m6) = (ServiceKey::mark(7), ServiceKey::mark_of(7, true));
    let rule = |vip: IpAddr| MarkRule {
        protocol: None,
        vip,
        ports: parse_ports("80,443").unwrap(),
    };
    let v4 = |last| std::net::Ipv4Addr::new(198, 18, 0, last);
    let mut ops = vec![Op::SetMark {
        mark: 7,
        rules: vec![rule(v4(100).into()), rule(VIP6.into())],
    }];
    for (key, persistent) in [
        (m4, None),
        (
            m6,
            Some(Persistence {
                prefix6: 64,
                ..Persistence::new(600)
            }),
        ),
    ] {
        ops.push(Op::AddService(ServiceDef {
            key,
            scheduler: "rr".into(),
            flags: Default::default(),
            persistent,
            ops: false,
        }));
    }
    for (key, a) in [
        (m4, IpAddr::from(v4(21))),
        (m6, rs6(0x11).into()),
        (m6, rs6(0x12).into()),
    ] {
        ops.push(Op::AddDest {
            key,
            dest: dest(a, 0, Forward::Route, 1),
        });
    }
    let mut r = Rig::new(&ops);
    let pinned = server_of(&r.feed(frame(Protocol::Tcp, client(1, 1), 40000, 80, true)));
    assert!([0x11, 0x12].contains(&pinned), "an IPv6 server: {pinned:x}");
    for (proto, host, dport) in [
        (Protocol::Tcp, 2, 443),
        (Protocol::Udp, 3, 80),
        (Protocol::Udp, 1, 443),
    ] {
        let f = frame(proto, client(1, host), 40001, dport, true);
        assert_eq!(server_of(&r.feed(f)), pinned, "{proto:?} to {dport}");
    }
    let other = server_of(&r.feed(frame(Protocol::Udp, client(2, 1), 40000, 443, true)));
    assert_ne!(other, pinned, "another /64, rr's next");
    let t = templates(&r);
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t.iter().all(|t| t.protocol == Protocol::Ip
        && t.key().template_mark() == Some(7)
        && t.fwmark == 7));
    assert!(t.iter().any(|t| t.caddr == IpAddr::V6(client(1, 0))));
    // Not a port of the mark, nor a -t/-u service: the kernel's.
    assert!(
        r.feed(frame(Protocol::Tcp, client(1, 1), 40002, 8080, true))
            .is_empty()
    );
    // An IPv4 frame of the mark reaches the IPv4 service's server.
    let f = crate::udp_from([198, 18, 0, 10], 5000, 443, b"q");
    assert_eq!(server_of(&r.feed(f)), 21);
}
