use super::*;
use crate::control::proto::ServiceDef;
use crate::lvs::service::Protocol;
use crate::wire::MacAddr;

fn key(port: u16) -> ServiceKey {
    ServiceKey::addr(Protocol::Tcp, Ipv4Addr::new(198, 18, 0, 100), port)
}

/// Real server 198.18.0.`last`:80, DR, of `weight`.
pub(crate) fn dest(last: u8, weight: u32) -> DestSpec {
    DestSpec {
        addr: Ipv4Addr::new(198, 18, 0, last).into(),
        port: 80,
        forward: Forward::Route,
        weight,
        uthreshold: 0,
        lthreshold: 0,
        slow_start: 0,
    }
}

fn add_service(port: u16, scheduler: &str) -> Op {
    add_persistent(port, scheduler, None)
}

fn add_persistent(port: u16, scheduler: &str, persistent: Option<Persistence>) -> Op {
    Op::AddService(ServiceDef {
        key: key(port),
        scheduler: scheduler.into(),
        flags: Default::default(),
        persistent,
        ops: false,
    })
}

fn add_dest(port: u16, dest: DestSpec) -> Op {
    Op::AddDest {
        key: key(port),
        dest,
    }
}

fn apply(m: &Model, ops: &[Op]) -> Result<Model, (usize, OpError)> {
    m.apply_all(
        ops,
        &mut |_, _| {
            Ok(NextHop {
                link: 0,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
            })
        },
        &mut |_, _| {},
    )
}

#[test]
fn errors_use_ipvsadm_texts_and_leave_the_model_alone() {
    let m = apply(
        &Model::default(),
        &[add_service(80, "wrr"), add_dest(80, dest(11, 3))],
    )
    .unwrap();
    let dup = add_dest(80, dest(11, 1));
    let (i, e) = apply(&m, &[Op::Clear, add_service(80, "rr"), dup.clone(), dup]).unwrap_err();
    assert_eq!(
        (i, e.to_string()),
        (3, "Destination already exists".to_string())
    );
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.services[0].dests.len(), 1);

    let e = apply(
        &m,
        &[Op::DelDest {
            key: key(81),
            addr: Ipv4Addr::new(1, 1, 1, 1).into(),
            port: 80,
        }],
    )
    .unwrap_err()
    .1;
    assert_eq!(e.to_string(), "Service not defined");
    let e = apply(&m, &[Op::DelService { key: key(81) }]).unwrap_err().1;
    assert_eq!(e.to_string(), "No such service");
    let e = apply(&m, &[add_service(80, "rr")]).unwrap_err().1;
    assert_eq!(e.to_string(), "Service already exists");
    let e = apply(&m, &[add_service(81, "bogus")]).unwrap_err().1;
    assert!(
        e.to_string()
            .starts_with("Scheduler or persistence engine not found")
    );
    let e = apply(
        &m,
        &[Op::EditDest {
            key: key(80),
            dest: dest(12, 1),
        }],
    )
    .unwrap_err()
    .1;
    assert_eq!(e.to_string(), "No such destination");
}

#[test]
fn new_dests_go_first_and_edits_bump_epoch() {
    let m = apply(
        &Model::default(),
        &[
            add_service(80, "wrr"),
            add_dest(80, dest(11, 3)),
            add_dest(80, dest(12, 1)),
        ],
    )
    .unwrap();
    let s = &m.services[0];
    assert_eq!(s.dests[0].spec.addr, Ipv4Addr::new(198, 18, 0, 12));
    let e0 = s.epoch;
    let m2 = apply(
        &m,
        &[Op::EditDest {
            key: key(80),
            dest: dest(11, 0),
        }],
    )
    .unwrap();
    assert!(m2.services[0].epoch > e0);
    assert_eq!(m2.services[0].dests[1].spec.weight, 0);
    // Counters are shared between the copies, so stats survive edits.
    assert!(Arc::ptr_eq(&m.services[0].stats, &m2.services[0].stats));
}

#[test]
fn tunnel_needs_an_outer_source_and_nat_does_not() {
    let mut d = dest(11, 1);
    d.forward = Forward::Tunnel;
    let ops = [add_service(80, "rr"), add_dest(80, d)];
    let e = apply(&Model::default(), &ops).unwrap_err();
    assert_eq!(e.0, 1);
    assert!(e.1.to_string().contains("--tun-source"), "{}", e.1);
    let with_src = Model::with_tun_source(Some(Ipv4Addr::new(198, 18, 0, 2)));
    let m = apply(&with_src, &ops).unwrap();
    assert_eq!(m.table(1).tun_source, Ipv4Addr::new(198, 18, 0, 2));
    assert!(!m.has_masq());
    let mut n = dest(12, 1);
    n.forward = Forward::Masq;
    n.port = 8080;
    let nat = apply(
        &Model::default(),
        &[ops[0].clone(), add_dest(80, n.clone())],
    )
    .unwrap();
    assert!(nat.has_masq());
    let t = nat.table(1);
    assert_eq!(t.services[0].dests[0].forward, Forward::Masq);
    assert_eq!(t.services[0].dests[0].port, 8080);
    let d = nat.masq_dests();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].addr, d[0].port, d[0].inpkts, d[0].outpkts),
        (n.addr, 8080, 0, 0)
    );
}

#[test]
fn set_timeouts_zero_keeps_value() {
    let m = apply(
        &Model::default(),
        &[Op::SetTimeouts(Timeouts {
            tcp: 10,
            tcpfin: 0,
            udp: 0,
        })],
    )
    .unwrap();
    assert_eq!(
        m.timeouts,
        Timeouts {
            tcp: 10,
            tcpfin: 120,
            udp: 300
        }
    );
}

#[test]
fn special_addresses_and_real_servers_cannot_be_vips() {
    for (a, why) in [
        ([0, 0, 0, 0], "unspecified"),
        ([0, 1, 2, 3], "unspecified"),
        ([255, 255, 255, 255], "broadcast"),
        ([224, 0, 0, 1], "multicast"),
        ([239, 1, 2, 3], "multicast"),
        ([127, 0, 0, 1], "loopback"),
        ([240, 0, 0, 1], "reserved"),
    ] {
        let op = Op::AddService(ServiceDef {
            key: ServiceKey::addr(Protocol::Tcp, Ipv4Addr::from(a), 80),
            scheduler: "rr".into(),
            flags: Default::default(),
            persistent: None,
            ops: false,
        });
        let (_, e) = apply(&Model::default(), &[op]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(why) && msg.contains("cannot be a VIP"),
            "{msg}"
        );
    }
    // A configured real server's address, in the same apply or later.
    let m = apply(
        &Model::default(),
        &[add_service(80, "rr"), add_dest(80, dest(11, 1))],
    )
    .unwrap();
    let rs_vip = Op::AddService(ServiceDef {
        key: ServiceKey::addr(Protocol::Udp, Ipv4Addr::new(198, 18, 0, 11), 53),
        scheduler: "rr".into(),
        flags: Default::default(),
        persistent: None,
        ops: false,
    });
    let (_, e) = apply(&m, &[rs_vip]).unwrap_err();
    assert!(e.to_string().contains("real server 198.18.0.11:80"), "{e}");
    // And the other way round: a VIP as a real server.
    let mut d = dest(100, 1);
    d.port = 8080;
    let (_, e) = apply(&m, &[add_dest(80, d)]).unwrap_err();
    assert!(e.to_string().contains("is a VIP"), "{e}");
}

#[test]
fn a_second_service_on_a_vip_is_not_probed_again() {
    let mut needs = Vec::new();
    Model::default()
        .apply_all(
            &[add_service(80, "rr"), add_service(443, "rr")],
            &mut |_, _| Err(OpError::Host("unused".into())),
            &mut |_, n| needs.push(n),
        )
        .unwrap();
    assert_eq!(
        needs,
        vec![Need::NewVip(Ipv4Addr::new(198, 18, 0, 100).into())]
    );
}

#[test]
fn a_mark_service_takes_its_marks_vips_and_keeps_its_mark() {
    use crate::lvs::mark::{MarkRule, parse_ports};
    let set = |vip: u8, ports: &str| Op::SetMark {
        mark: 100,
        rules: vec![MarkRule {
            protocol: None,
            vip: Ipv4Addr::new(198, 18, 0, vip).into(),
            ports: parse_ports(ports).unwrap(),
        }],
    };
    let fwm = Op::AddService(ServiceDef {
        key: ServiceKey::mark(100),
        scheduler: "rr".into(),
        flags: Default::default(),
        persistent: None,
        ops: true,
    });
    let (_, e) = apply(&Model::default(), std::slice::from_ref(&fwm)).unwrap_err();
    assert_eq!(e, OpError::MarkNotDefined(100));
    let mut needs = Vec::new();
    let m = Model::default()
        .apply_all(
            &[set(100, "80,443"), fwm.clone(), set(101, "80")],
            &mut |_, _| Err(OpError::Host("unused".into())),
            &mut |i, n| needs.push((i, n)),
        )
        .unwrap();
    // Probed when a service uses it, and when the mark moves.
    let vip = |a| Need::NewVip(Ipv4Addr::new(198, 18, 0, a).into());
    assert_eq!(needs, vec![(1, vip(100)), (2, vip(101))]);
    assert!(
        m.has_vip(Ipv4Addr::new(198, 18, 0, 101).into())
            && !m.has_vip(Ipv4Addr::new(198, 18, 0, 100).into())
    );
    let t = m.table(1);
    assert_eq!(t.vips(), [Ipv4Addr::new(198, 18, 0, 101)]);
    let udp = crate::lvs::service::Protocol::Udp;
    assert_eq!(t.lookup(udp, Ipv4Addr::new(198, 18, 0, 101), 80), Some(0));
    assert!(t.services[0].ops);
    let del = Op::SetMark {
        mark: 100,
        rules: vec![],
    };
    let (_, e) = apply(&m, std::slice::from_ref(&del)).unwrap_err();
    assert_eq!(e, OpError::MarkInUse(100));
    // -C leaves the marks; the ops that rebuild the model define the mark
    // before its service.
    let m = apply(&m, &[Op::Clear, fwm]).unwrap();
    let ops = m.ops();
    assert!(matches!(ops[1], Op::SetMark { mark: 100, .. }), "{ops:?}");
    assert!(
        matches!(ops[2], Op::AddService(ServiceDef { ops: true, .. })),
        "{ops:?}"
    );
}

#[test]
fn a_persistence_timeout_out_of_range_is_refused_as_ipvsadm_says() {
    for t in [0, MAX_TIMEOUT + 1] {
        let op = add_persistent(80, "rr", Some(Persistence::new(t)));
        let e = apply(&Model::default(), &[op]).unwrap_err().1;
        assert_eq!(e, OpError::BadTimeout(t));
        assert_eq!(
            e.to_string(),
            format!("invalid timeout value `{t}' specified")
        );
    }
    let ok = add_persistent(80, "rr", Some(Persistence::new(MAX_TIMEOUT)));
    assert!(apply(&Model::default(), &[ok]).is_ok());
}

/// An IPv6 service takes IPv6 real servers by direct routing, NAT or a
/// tunnel, and persistence by a prefix length (1..128). A real server of
/// the other family only by a tunnel, as IPVS.
#[test]
fn ipv6_services_take_every_method_and_mix_families_only_by_tunnel() {
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap();
    let key6 = ServiceKey::addr(Protocol::Tcp, v6("2001:2::100"), 80);
    let svc6 = |persistent| {
        Op::AddService(ServiceDef {
            key: key6,
            scheduler: "rr".into(),
            flags: Default::default(),
            persistent,
            ops: false,
        })
    };
    let dest6 = |forward| DestSpec {
        addr: v6("2001:2::11").into(),
        forward,
        ..dest(11, 1)
    };
    let add6 = |d| Op::AddDest { key: key6, dest: d };
    let m = apply(
        &Model::default(),
        &[svc6(None), add6(dest6(Forward::Route))],
    )
    .unwrap();
    assert_eq!(m.snapshot().services[0].dests.len(), 1);
    let both = Model::with_tun_sources(Some(Ipv4Addr::new(198, 18, 0, 2)), Some(v6("2001:2::2")));
    let refused_by = |m: &Model, ops: &[Op], want: &str| {
        let (_, e) = apply(m, ops).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    };
    let refused = |ops: &[Op], want: &str| refused_by(&both, ops, want);
    let p64 = Persistence {
        prefix6: 64,
        ..Persistence::new(360)
    };
    let m64 = apply(&both, &[svc6(Some(p64))]).unwrap();
    assert_eq!(m64.snapshot().services[0].def.persistent, Some(p64));
    let p0 = Persistence { prefix6: 0, ..p64 };
    refused(&[svc6(Some(p0))], "illegal ipv6 netmask 0 (1..128)");
    let nat66 = apply(
        &m,
        &[add6(DestSpec {
            addr: v6("2001:2:0:2::11").into(),
            ..dest6(Forward::Masq)
        })],
    );
    assert_eq!(nat66.unwrap().snapshot().services[0].dests.len(), 2);
    refused(
        &[svc6(None), add6(dest(11, 1))],
        "not of the service's address family",
    );
    let nat46 = DestSpec {
        forward: Forward::Masq,
        ..dest(11, 1)
    };
    refused(
        &[svc6(None), add6(nat46)],
        "NAT (-m) translates within one family only",
    );
    // Mixed families: DR and NAT refused, TUN taken (4in6, 6in4).
    let mixed = "Different address family is allowed only for tunneling servers: real server";
    refused(&[svc6(None), add6(dest(11, 1))], mixed);
    let v4_dr_to_v6 = add_dest(80, dest6(Forward::Route));
    refused(&[add_service(80, "rr"), v4_dr_to_v6], mixed);
    let v4_tun_to_v6 = add_dest(80, dest6(Forward::Tunnel));
    let tun4 = DestSpec {
        forward: Forward::Tunnel,
        ..dest(11, 1)
    };
    let m2 = apply(
        &both,
        &[
            add_service(80, "rr"),
            v4_tun_to_v6.clone(),
            svc6(None),
            add6(dest6(Forward::Tunnel)),
            add6(tun4.clone()),
        ],
    )
    .unwrap();
    let t = m2.table(1);
    assert_eq!(
        (t.services[0].dests.len(), t.services[1].dests.len()),
        (1, 2)
    );
    assert_eq!(t.tun_source6, v6("2001:2::2"));
    // Each family's tunnels need that family's source.
    let v4_only = Model::with_tun_source(Some(Ipv4Addr::new(198, 18, 0, 2)));
    refused_by(
        &v4_only,
        &[add_service(80, "rr"), v4_tun_to_v6],
        "--tun-source6 ADDR",
    );
    refused_by(
        &Model::with_tun_sources(None, Some(v6("2001:2::2"))),
        &[svc6(None), add6(tun4)],
        "--tun-source ADDR",
    );
    let edit = Op::EditDest {
        key: key6,
        dest: dest6(Forward::Tunnel),
    };
    let (at, e) = m
        .apply_all(&[edit], &mut |_, _| unreachable!(), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(at, 0);
    assert!(e.to_string().contains("--tun-source6"), "{e}");
}

/// A mark's IPv6 rules serve its IPv6 service (`-f 100 -6`), its IPv4
/// ones its IPv4 service: two services of one mark, each finding its
/// family's frames; only the IPv4 VIP is probed (ARP). An IPv6 mark
/// service's real servers are IPv6 ones.
#[test]
fn a_marks_ipv6_rules_serve_its_ipv6_service() {
    use crate::lvs::mark::{MarkRule, parse_ports};
    let v6: std::net::Ipv6Addr = "2001:2::100".parse().unwrap();
    let rule = |vip: IpAddr| MarkRule {
        protocol: None,
        vip,
        ports: parse_ports("80,443").unwrap(),
    };
    let set = Op::SetMark {
        mark: 100,
        rules: vec![rule(Ipv4Addr::new(198, 18, 0, 100).into()), rule(v6.into())],
    };
    let fwm = |v6| {
        Op::AddService(ServiceDef {
            key: ServiceKey::mark_of(100, v6),
            scheduler: "rr".into(),
            flags: Default::default(),
            persistent: None,
            ops: false,
        })
    };
    let mut needs = Vec::new();
    let m = Model::default()
        .apply_all(
            &[set, fwm(true), fwm(false)],
            &mut |_, _| Err(OpError::Host("unused".into())),
            &mut |i, n| needs.push((i, n)),
        )
        .unwrap();
    // Each family's VIP is probed when its service comes.
    let vip4 = Need::NewVip(Ipv4Addr::new(198, 18, 0, 100).into());
    assert_eq!(needs, vec![(1, Need::NewVip(v6.into())), (2, vip4)]);
    assert!(m.has_vip(v6.into()));
    let t = m.table(1);
    assert_eq!(t.vips6(), [v6]);
    let tcp = Protocol::Tcp;
    let i6 = t.lookup6(tcp, v6, 443).unwrap();
    assert_eq!(t.services[i6].key, ServiceKey::mark_of(100, true));
    let i4 = t.lookup(tcp, Ipv4Addr::new(198, 18, 0, 100), 443).unwrap();
    assert_eq!(t.services[i4].key, ServiceKey::mark(100));
    assert_eq!(t.lookup6(tcp, v6, 8080), None);
    let key = ServiceKey::mark_of(100, true);
    let (_, e) = apply(
        &m,
        &[Op::AddDest {
            key,
            dest: dest(11, 1),
        }],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("not of the service's address family"),
        "{e}"
    );
}

/// mh gives every real server a slot: a service holds at most as many
/// servers as its table has slots, added or by turning to mh.
#[test]
fn mh_holds_no_more_real_servers_than_slots() {
    let many = |n: usize| -> Vec<Op> {
        (0..n)
            .map(|i| {
                let mut d = dest(11, 1);
                d.port = 1 + i as u16;
                add_dest(80, d)
            })
            .collect()
    };
    let mut ops = vec![add_service(80, "mh")];
    ops.extend(many(MH_SLOTS));
    let m = apply(&Model::default(), &ops).unwrap();
    let mut one_more = dest(12, 1);
    one_more.port = 80;
    let (_, e) = apply(&m, &[add_dest(80, one_more)]).unwrap_err();
    assert!(matches!(e, OpError::MhFull), "{e}");
    // A wrr service with one more turned to mh is refused too.
    let mut ops = vec![add_service(80, "wrr")];
    ops.extend(many(MH_SLOTS + 1));
    let m = apply(&Model::default(), &ops).unwrap();
    let Op::AddService(mut d) = add_service(80, "mh") else {
        unreachable!()
    };
    d.scheduler = "mh".into();
    let (_, e) = apply(&m, &[Op::EditService(d)]).unwrap_err();
    assert!(e.to_string().starts_with("mh holds at most 4093"), "{e}");
}

#[test]
fn a_server_that_joins_a_running_service_ramps_and_its_quorum_weight_does_not() {
    let slow = |last, weight| DestSpec {
        slow_start: 5,
        ..dest(last, weight)
    };
    let t0 = std::time::Instant::now();
    let s = |ms| t0 + std::time::Duration::from_millis(ms);
    // Loaded with its service: at its weight at once.
    let mut m = apply(
        &Model::default(),
        &[add_service(80, "wrr"), add_dest(80, slow(11, 10))],
    )
    .unwrap();
    assert!(!m.start_joined(&Model::default(), t0));
    // Added to the running service: from 1, up in steps, then done.
    let mut n = apply(&m, &[add_dest(80, slow(12, 10))]).unwrap();
    assert!(n.start_joined(&m, t0));
    let w = |m: &Model| m.table(1).services[0].dests[0].weight;
    assert_eq!((w(&n), n.services[0].dests[1].shown_weight()), (1, 10));
    assert_eq!(n.live_weight(&key(80), None), 20);
    assert!(n.step_ramps(s(2100)));
    assert_eq!(w(&n), 5);
    // A step that leaves the weight publishes nothing.
    assert!(!n.step_ramps(s(2500)));
    assert!(n.step_ramps(s(5000)));
    assert_eq!((w(&n), n.ramping()), (10, false));
    // Restored by its check: it ramps again; the log saw each step.
    let a = n.services[0].dests[0].spec.addr;
    n.apply_check(
        &key(80),
        a,
        80,
        CheckVerdict::Down(Some(FailAction::Quiesce)),
    );
    assert_eq!(w(&n), 0);
    n.apply_check(&key(80), a, 80, CheckVerdict::Down(None));
    assert!(n.ramping() && (1..=2).contains(&w(&n)));
    m = n;
    assert!(m.services[0].log.len() >= 4);
}
