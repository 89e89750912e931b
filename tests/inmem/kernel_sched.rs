//! New flows the kernel program scheduled itself (issue 29, `adopt.rs`),
//! in memory: the test plays the program, holding each flow in the
//! backend's map and reporting it, and the data plane must enter it as
//! its own scheduling would have (listed, counted, synced), move it at
//! the reported establishment, take it back at its FIN or timer, refuse
//! what it cannot place, and say whether its table has room for more.

use crate::dr6::{CLIENT6, rs6};
use crate::offload::{offloading, svc_inpkts};
use crate::sync::records;
use etherparse::PacketBuilder;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{Receiver, sync_channel};
use uvs::control::proto::Op;
use uvs::io::{AnyFlow, FlowTuple, Handover, KernelFlow, KernelFlowEvent};
use uvs::lvs::conn::{ConnInfo, ConnState, PortableConn, TcpState};
use uvs::lvs::service::{Forward, Protocol, ServiceKey, Timeouts};
use uvs::lvs::stats::DestState;
use uvs::lvs::sync::{Record, SyncEvent};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, VIP6, dest, hop_by_last_octet, one_link, service};

const CLIENT: [u8; 4] = [198, 18, 0, 10];
const SYN: u8 = 0x02;

/// An address family: the client, VIP and real servers of its services.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fam {
    v6: bool,
}

pub(crate) const V4: Fam = Fam { v6: false };
const V6: Fam = Fam { v6: true };
pub(crate) const BOTH: [Fam; 2] = [V4, V6];

/// TCP services listen on 80, UDP ones on 53.
fn port(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => 80,
        _ => 53,
    }
}

impl Fam {
    pub(crate) fn client(self) -> IpAddr {
        match self.v6 {
            false => Ipv4Addr::from(CLIENT).into(),
            true => CLIENT6.into(),
        }
    }

    pub(crate) fn vip(self) -> IpAddr {
        match self.v6 {
            false => Ipv4Addr::from(VIP).into(),
            true => VIP6.into(),
        }
    }

    /// Real server `n`: 198.18.0.n or 2001:2::n (its MAC ends in n).
    pub(crate) fn rs(self, n: u8) -> IpAddr {
        match self.v6 {
            false => Ipv4Addr::new(198, 18, 0, n).into(),
            true => rs6(n.into()).into(),
        }
    }

    pub(crate) fn key(self, p: Protocol) -> ServiceKey {
        ServiceKey::addr(p, self.vip(), port(p))
    }

    /// The client's flow from `sport` to protocol `p`'s service.
    pub(crate) fn flow(self, p: Protocol, sport: u16) -> AnyFlow {
        let dport = port(p);
        let proto = p.number();
        match self.v6 {
            false => AnyFlow::V4(FlowTuple {
                saddr: CLIENT.into(),
                daddr: VIP.into(),
                sport,
                dport,
                proto,
            }),
            true => AnyFlow::V6(FlowTuple {
                saddr: CLIENT6,
                daddr: VIP6,
                sport,
                dport,
                proto,
            }),
        }
    }

    /// A client's frame of that flow (TCP with `flags` as `with_flags`).
    pub(crate) fn frame(self, p: Protocol, sport: u16, flags: &str) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC);
        let b = match self.v6 {
            false => b.ipv4(CLIENT, VIP, 64),
            true => b.ipv6(CLIENT6.octets(), VIP6.octets(), 64),
        };
        let mut v = Vec::new();
        match p {
            Protocol::Tcp => crate::with_flags(b.tcp(sport, 80, 7, 64000), flags)
                .write(&mut v, b"x")
                .unwrap(),
            _ => b.udp(sport, 53).write(&mut v, b"q").unwrap(),
        }
        v
    }
}

/// TCP :80 and UDP :53 on both VIPs, each on servers 11 and 12 (rr, DR),
/// the offload on, with `max_conns` per table; and the sync queue.
pub(crate) fn rig_max(max_conns: usize) -> (Rig, Receiver<SyncEvent>) {
    let mut ops = Vec::new();
    for f in BOTH {
        for p in [Protocol::Tcp, Protocol::Udp] {
            let ds = [11, 12].map(|n| dest(f.rs(n), port(p), Forward::Route, 1));
            ops.extend(service(f.key(p), "rr", &ds));
        }
    }
    let r = Rig::build_max(one_link(), hop_by_last_octet, Vec::new(), &ops, max_conns);
    let mut r = offloading(r);
    let (tx, rx) = sync_channel(4096);
    r.dp.set_sync(tx);
    (r, rx)
}

pub(crate) fn rig() -> (Rig, Receiver<SyncEvent>) {
    rig_max(uvs::lvs::conn::DEFAULT_MAX_CONNS)
}

/// Service `key`'s place in the published table.
pub(crate) fn svc_index(r: &Rig, key: ServiceKey) -> usize {
    let t = r.publisher.shared().load();
    t.services.iter().position(|s| s.key == key).unwrap()
}

/// Real server `addr` of service `key`: uvs's id for it and its state.
pub(crate) fn server(r: &Rig, key: ServiceKey, addr: IpAddr) -> (u64, std::sync::Arc<DestState>) {
    let t = r.publisher.shared().load();
    let s = &t.services[svc_index(r, key)];
    let d = s.dests.iter().find(|d| d.addr == addr).unwrap();
    (d.id, d.state.clone())
}

/// The service's new connections, as `-L --stats` counts them.
pub(crate) fn svc_conns(r: &Rig, key: ServiceKey) -> u64 {
    let t = r.publisher.shared().load();
    t.services[svc_index(r, key)].stats.snapshot().conns
}

/// The program's map holds the flow, towards `dmac`.
fn hold(r: &mut Rig, f: AnyFlow, dmac: [u8; 6]) {
    fn h<A>(flow: FlowTuple<A>, dmac: [u8; 6]) -> (u8, Handover<A>) {
        let up_every_ms = 15_000;
        (
            0,
            Handover {
                flow,
                dmac,
                smac: DIR_MAC,
                up_every_ms,
                tun: None,
                dest_id: 0,
            },
        )
    }
    match f {
        AnyFlow::V4(t) => {
            r.io.offloaded.insert(t, h(t, dmac));
        }
        AnyFlow::V6(t) => {
            r.io.offloaded6.insert(t, h(t, dmac));
        }
    }
}

/// The program's entry for the flow: its link, real server MAC and how
/// often a frame goes up.
pub(crate) fn held(r: &Rig, f: AnyFlow) -> Option<(u8, [u8; 6], u64)> {
    match f {
        AnyFlow::V4(t) => {
            r.io.offloaded
                .get(&t)
                .map(|(l, h)| (*l, h.dmac, h.up_every_ms))
        }
        AnyFlow::V6(t) => {
            r.io.offloaded6
                .get(&t)
                .map(|(l, h)| (*l, h.dmac, h.up_every_ms))
        }
    }
}

/// How many times the flow was taken back from the program.
pub(crate) fn taken_back(r: &Rig, f: AnyFlow) -> usize {
    match f {
        AnyFlow::V4(t) => r.io.taken_back.iter().filter(|x| **x == t).count(),
        AnyFlow::V6(t) => r.io.taken_back6.iter().filter(|x| **x == t).count(),
    }
}

pub(crate) fn report(r: &mut Rig, f: AnyFlow, what: KernelFlowEvent) {
    r.io.kernel_flows.push_back(KernelFlow {
        link: 0,
        flow: f,
        client_mac: CL_MAC,
        what,
    });
}

/// The program scheduled the flow to real server `n` at its first frame
/// and forwarded it: the flow is in its map, and reported with that
/// frame (60 IP bytes), which uvs counts.
pub(crate) fn scheduled(r: &mut Rig, fam: Fam, p: Protocol, sport: u16, n: u8) -> AnyFlow {
    let f = fam.flow(p, sport);
    hold(r, f, [2, 0, 0, 0, 1, n]);
    let dest_id = server(r, fam.key(p), fam.rs(n)).0;
    let tcp_flags = if p == Protocol::Tcp { SYN } else { 0 };
    let new = KernelFlowEvent::New {
        dest_id,
        tcp_flags,
        packets: 1,
        bytes: 60,
    };
    report(r, f, new);
    f
}

/// The listed connection from the client's `sport`, if any.
pub(crate) fn listed(r: &Rig, fam: Fam, sport: u16) -> Option<ConnInfo> {
    let all = r.dp.conn_list();
    let mut it = all
        .into_iter()
        .filter(|c| c.caddr == fam.client() && c.cport == sport);
    let c = it.next();
    assert!(it.next().is_none(), "one entry per flow");
    c
}

/// The upserts queued for the client's `sport` since the last call.
pub(crate) fn upserts(rx: &Receiver<SyncEvent>, fam: Fam, sport: u16) -> Vec<PortableConn> {
    records(rx)
        .into_iter()
        .filter_map(|rec| match rec {
            Record::Upsert(p) if p.caddr == fam.client() && p.cport == sport => Some(p),
            _ => None,
        })
        .collect()
}

/// The one frame sent went to real server `n`.
fn sent_to(out: &[Vec<u8>], n: u8) {
    assert_eq!(crate::sync::sent_to(out), [2, 0, 0, 0, 1, n]);
}

#[test]
fn a_reported_tcp_flow_is_entered_established_and_taken_back_at_its_fin() {
    for fam in BOTH {
        let (mut r, rx) = rig();
        let key = fam.key(Protocol::Tcp);
        let (_, rs11) = server(&r, key, fam.rs(11));
        // Server 11, where uvs's rr would have sent its own first flow
        // to 12 (the newest server, first in the list): the report decides.
        let f = scheduled(&mut r, fam, Protocol::Tcp, 40000, 11);
        assert!(!r.poll(), "no frame: the reports are read at a wake-up");
        let c = listed(&r, fam, 40000).expect("entered");
        assert_eq!(
            (c.state.as_str(), c.daddr),
            ("SYN_RECV", fam.rs(11)),
            "{fam:?}"
        );
        assert_eq!((svc_conns(&r, key), rs11.stats.snapshot().conns), (1, 1));
        // SYN_RECV counts as active (the kernel's tcp_state_active_table).
        assert_eq!((rs11.active(), rs11.inactive()), (1, 0));
        let ups = upserts(&rx, fam, 40000);
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert_eq!(
            (ups[0].state, ups[0].raddr),
            (ConnState::Tcp(TcpState::SynRecv), fam.rs(11))
        );
        assert_eq!(
            (r.counter("kernel_scheduled"), r.counter("kernel_refused")),
            (1, 0)
        );
        assert_eq!(taken_back(&r, f), 0, "the program keeps it");

        // The client's ACK passed the program: established, and the
        // program's entry written again with the established interval.
        report(&mut r, f, KernelFlowEvent::Established);
        r.poll();
        assert_eq!(listed(&r, fam, 40000).unwrap().state, "ESTABLISHED");
        assert_eq!((rs11.active(), rs11.inactive()), (1, 0));
        let ups = upserts(&rx, fam, 40000);
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert_eq!(ups[0].state, ConnState::Tcp(TcpState::Established));
        assert_eq!(held(&r, f), Some((0, [2, 0, 0, 0, 1, 11], 60_000)));
        assert_eq!(svc_conns(&r, key), 1, "not counted again");

        // Its FIN comes up, goes to the same server, and takes the flow
        // back with what the program forwarded.
        let before = svc_inpkts(&r, svc_index(&r, key));
        sent_to(&r.feed(fam.frame(Protocol::Tcp, 40000, "AF")), 11);
        assert_eq!(taken_back(&r, f), 1);
        assert_eq!(held(&r, f), None);
        assert_eq!(svc_inpkts(&r, svc_index(&r, key)), before + 1 + 1000);
        assert_eq!(r.counter("kernel_scheduled"), 1);
    }
}

#[test]
fn reports_are_entered_before_the_frame_that_follows_them() {
    for fam in BOTH {
        for p in [Protocol::Tcp, Protocol::Udp] {
            let (mut r, rx) = rig();
            scheduled(&mut r, fam, p, 5000, 11);
            // A frame of the same flow in the same turn (the periodic one
            // up to uvs, say): without the entry, uvs's rr would send a
            // UDP one to 12 and drop a TCP ACK.
            sent_to(&r.feed(fam.frame(p, 5000, "A")), 11);
            let c = listed(&r, fam, 5000).unwrap();
            let state = if p == Protocol::Tcp {
                "ESTABLISHED"
            } else {
                "UDP"
            };
            assert_eq!(
                (c.state.as_str(), c.daddr),
                (state, fam.rs(11)),
                "{fam:?} {p:?}"
            );
            assert_eq!(r.counter("kernel_scheduled"), 1);
            assert_eq!(r.counter("no_conn_dropped"), 0);
            assert_eq!(svc_conns(&r, fam.key(p)), 1);
            assert!(!upserts(&rx, fam, 5000).is_empty(), "synced");
        }
    }
}

/// A report wakes uvs only if none did in the last millisecond (the
/// program's `submit`, io/bpf/sched.h): after a read that found reports
/// the loop reads again within two milliseconds, whatever else is due,
/// and once a read past that finds none, it sleeps until its
/// housekeeping again.
#[test]
fn after_reading_reports_the_loop_reads_again_within_two_milliseconds() {
    use std::time::Duration;
    let (mut r, _rx) = rig();
    r.poll();
    assert_eq!(r.dp.reports_due_ms(), None, "idle");
    scheduled(&mut r, V4, Protocol::Udp, 6000, 11);
    r.poll();
    assert_eq!(r.counter("kernel_scheduled"), 1);
    let soon = r.dp.reports_due_ms();
    assert!(soon.is_some_and(|ms| ms <= 2), "after a report: {soon:?}");
    assert!(r.dp.wait_ms(1000) <= 2, "the loop's wait");
    // A report that came without a wake-up: read at that turn.
    scheduled(&mut r, V4, Protocol::Udp, 6001, 11);
    std::thread::sleep(Duration::from_millis(3));
    r.poll();
    assert_eq!(r.counter("kernel_scheduled"), 2);
    assert!(r.dp.reports_due_ms().is_some_and(|ms| ms <= 2));
    // A read past that time that finds none.
    std::thread::sleep(Duration::from_millis(3));
    r.poll();
    assert_eq!(r.dp.reports_due_ms(), None, "after a read that found none");
}

/// Polls until `done` holds, for at most three seconds (the sweep's pass,
/// the data plane's reading of the program's counts once a second).
pub(crate) fn until(r: &mut Rig, what: &str, done: impl Fn(&Rig) -> bool) {
    for _ in 0..600 {
        if done(r) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.poll();
    }
    panic!("{what}");
}

/// Polls until the sweep has taken `f` back (the entries' timers ran
/// out).
fn until_taken_back(r: &mut Rig, f: AnyFlow) {
    until(r, &format!("{f:?} was not taken back"), |r| {
        taken_back(r, f) > 0
    });
}

#[test]
fn a_reported_udp_flows_timer_takes_it_back_with_what_the_program_forwarded() {
    let (mut r, _rx) = rig();
    r.apply(&[Op::SetTimeouts(Timeouts {
        udp: 1,
        ..Timeouts::default()
    })]);
    let flows = BOTH.map(|fam| scheduled(&mut r, fam, Protocol::Udp, 5000, 12));
    r.poll();
    assert_eq!(r.counter("kernel_scheduled"), 2);
    for fam in BOTH {
        // The first datagram, counted from the report.
        let (_, rs12) = server(&r, fam.key(Protocol::Udp), fam.rs(12));
        let i = svc_index(&r, fam.key(Protocol::Udp));
        assert_eq!(svc_inpkts(&r, i), 1, "{fam:?}");
        assert_eq!(rs12.stats.snapshot().inbytes, 60);
    }
    for (fam, f) in BOTH.into_iter().zip(flows) {
        let i = svc_index(&r, fam.key(Protocol::Udp));
        let (_, rs12) = server(&r, fam.key(Protocol::Udp), fam.rs(12));
        until_taken_back(&mut r, f);
        assert_eq!(svc_inpkts(&r, i), 1 + 1000, "{fam:?}");
        assert!(listed(&r, fam, 5000).is_none());
        assert_eq!((rs12.inactive(), rs12.stats.snapshot().inpkts), (0, 1001));
    }
}

#[test]
fn a_report_uvs_cannot_place_is_refused_and_the_flow_taken_back() {
    for fam in BOTH {
        let (mut r, rx) = rig();
        // No such real server.
        let unknown = fam.flow(Protocol::Tcp, 40000);
        hold(&mut r, unknown, [2, 0, 0, 0, 1, 12]);
        let new = |dest_id| KernelFlowEvent::New {
            dest_id,
            tcp_flags: SYN,
            packets: 1,
            bytes: 60,
        };
        report(&mut r, unknown, new(9999));
        // A server of another service (the UDP one's, for a TCP flow).
        let other = fam.flow(Protocol::Tcp, 40001);
        hold(&mut r, other, [2, 0, 0, 0, 1, 12]);
        let udp12 = server(&r, fam.key(Protocol::Udp), fam.rs(12)).0;
        report(&mut r, other, new(udp12));
        r.poll();
        assert_eq!(r.counter("kernel_refused"), 2, "{fam:?}");
        assert_eq!(r.counter("kernel_scheduled"), 0);
        assert_eq!((taken_back(&r, unknown), taken_back(&r, other)), (1, 1));
        assert_eq!(r.dp.conn_count(), 0);
        assert_eq!(svc_conns(&r, fam.key(Protocol::Tcp)), 0);
        assert!(records(&rx).is_empty());
        // Its next frame comes up to uvs, which decides (an ACK without a
        // connection: dropped, as IPVS does).
        assert!(r.feed(fam.frame(Protocol::Tcp, 40000, "A")).is_empty());
        // Established reports of a flow uvs does not have take it back too.
        hold(&mut r, unknown, [2, 0, 0, 0, 1, 12]);
        report(&mut r, unknown, KernelFlowEvent::Established);
        r.poll();
        assert_eq!(taken_back(&r, unknown), 2);
        assert_eq!(r.dp.conn_count(), 0);
    }
}

#[test]
fn a_report_for_a_flow_uvs_already_has_leaves_uvs_entry_and_takes_the_flow_back() {
    for fam in BOTH {
        let (mut r, _rx) = rig();
        // uvs scheduled it first (rr: server 12)...
        sent_to(&r.feed(fam.frame(Protocol::Tcp, 40000, "S")), 12);
        // ...then the program did again, to 11.
        let f = scheduled(&mut r, fam, Protocol::Tcp, 40000, 11);
        r.poll();
        assert_eq!(taken_back(&r, f), 1, "{fam:?}");
        assert_eq!(held(&r, f), None);
        assert_eq!(listed(&r, fam, 40000).unwrap().daddr, fam.rs(12));
        assert_eq!(
            (r.counter("kernel_scheduled"), r.counter("kernel_refused")),
            (0, 0)
        );
        assert_eq!(svc_conns(&r, fam.key(Protocol::Tcp)), 1);
        // Its frames come up and stay on uvs's server.
        sent_to(&r.feed(fam.frame(Protocol::Tcp, 40000, "A")), 12);
    }
}

/// The control plane writes the programs' maps before it publishes the
/// table (`Publisher::publish`): a program may schedule to a server the
/// data plane's table gained a moment ago. A data plane woken without a
/// frame reads the reports with the newest table, not the one it had.
#[test]
fn a_report_for_a_server_the_table_just_gained_is_entered_while_idle() {
    for fam in BOTH {
        let (mut r, _rx) = rig();
        let key = fam.key(Protocol::Udp);
        let add = Op::AddDest {
            key,
            dest: dest(fam.rs(13), 53, Forward::Route, 1),
        };
        r.model = r
            .model
            .apply_all(
                &[add],
                &mut |ip, f| Ok(hop_by_last_octet(ip, f)),
                &mut |_, _| {},
            )
            .unwrap();
        r.publisher.publish(&r.model, &r.routes);
        scheduled(&mut r, fam, Protocol::Udp, 5000, 13);
        assert!(!r.poll());
        assert_eq!(r.counter("kernel_refused"), 0, "{fam:?}");
        assert_eq!(r.counter("kernel_scheduled"), 1);
        assert_eq!(listed(&r, fam, 5000).unwrap().daddr, fam.rs(13));
    }
}

/// A client's port again after its last connection ended (wrk with
/// `Connection: close` reuses ports in TIME_WAIT): the program schedules
/// the new SYN, maybe to another server, and uvs's ending entry gives way
/// to it, as a SYN that reuses an entry ends it in uvs's own path. The
/// next frames go where the program sent the SYN.
#[test]
fn a_syn_that_reuses_an_ending_entry_makes_the_programs_flow_the_new_one() {
    for fam in BOTH {
        let (mut r, _rx) = rig();
        let f = scheduled(&mut r, fam, Protocol::Tcp, 41000, 11);
        report(&mut r, f, KernelFlowEvent::Established);
        r.poll();
        // The FIN comes up and takes the flow back: FIN_WAIT, reusable.
        sent_to(&r.feed(fam.frame(Protocol::Tcp, 41000, "AF")), 11);
        assert_eq!(held(&r, f), None);
        let was = listed(&r, fam, 41000).unwrap().state;
        // The same port's next SYN, scheduled by the program to 12.
        let g = scheduled(&mut r, fam, Protocol::Tcp, 41000, 12);
        r.poll();
        let c = listed(&r, fam, 41000).expect("entered");
        assert_eq!(
            (c.state.as_str(), c.daddr),
            ("SYN_RECV", fam.rs(12)),
            "{fam:?}, after {was}"
        );
        assert!(held(&r, g).is_some(), "the program keeps the new flow");
        assert_eq!(r.counter("kernel_scheduled"), 2);
        // Its ACK, come up (the periodic frame, say), goes to 12.
        sent_to(&r.feed(fam.frame(Protocol::Tcp, 41000, "A")), 12);
    }
}
