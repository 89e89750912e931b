//! Packet fixtures for the new flows the kernel programs schedule
//! themselves (`sched.rs`), in test_run's way: the object loaded (not
//! attached), its maps filled from a published table by the very code uvs
//! runs (`KernelTable::of`, `Scheduling::sync`), crafted frames run
//! through `uvs_steer` and `uvs_tc_forward` with BPF_PROG_TEST_RUN. Each
//! verdict and the bytes left are checked, and so are the ring's events
//! (read and parsed as uvs reads them) and the flow maps' entries. The
//! real server a hashing scheduler's program picks is checked against
//! uvs's own scheduler, client by client. Needs root, as test_run.
//!
//! The ring is given one page, so that it fills within a few frames.

#[cfg(uvs_xdp)]
mod run {
    mod refresh;
    mod ring;
    mod udp;
    mod workers;

    use super::super::claims::{Claims, tests::service};
    use super::super::events;
    use super::super::maps::{Flow6Key, FlowKey, FlowValue, RealCount};
    use super::super::sched::{KernelTable, Scheduling};
    use super::super::test_frames::{
        CL_MAC, DIR_MAC, eth, forwarded, forwarded6, rechecked, tcp4, tcp6_flags, tuple, udp4, udp6,
    };
    use super::super::test_run::run::{
        TC_ACT_OK, TC_ACT_REDIRECT, XDP_REDIRECT, XDP_TX, object, programs, run,
    };
    use crate::io::xdp::xsk::Xsk;
    use crate::io::{AnyFlow, KernelFlow, KernelFlowEvent};
    use crate::lvs::sched::SchedState;
    use crate::lvs::sched::scheduler::{Member, SchedKey};
    use crate::lvs::service::{
        Forward, Persistence, Protocol, SchedFlags, SchedulerKind, ServiceKey,
    };
    use crate::lvs::table::Table;
    use crate::wire::MacAddr;
    use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const VIP: [u8; 4] = [198, 18, 0, 100];
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const FLOW_SYN: u8 = 1;
    const FLOW_CLOSING: u8 = 3;
    const FLOW_CLOSED: u8 = 4;
    const RST: u8 = 0x04;

    /// The table's services, by index: protocol, VIP, port, scheduler,
    /// `-b` flags, their servers' weights.
    type Spec = (Protocol, IpAddr, u16, SchedulerKind, u8, &'static [u32]);
    const RR: usize = 0;
    const RR6: usize = 1;
    const WRR: usize = 2;
    const HASHED: [usize; 6] = [3, 4, 5, 6, 7, 8];
    const PERSISTENT: usize = 9;
    const NAT: usize = 11;

    fn specs() -> Vec<Spec> {
        use Protocol::{Tcp, Udp};
        use SchedulerKind::*;
        let (v4, v6) = (IpAddr::from(VIP), IpAddr::from(VIP6));
        let port = SchedFlags::PORT;
        vec![
            (Tcp, v4, 80, Rr, 0, &[1, 1]),
            (Udp, v6, 53, Rr, 0, &[1]),
            (Udp, v4, 53, Wrr, 0, &[3, 2, 1]),
            (Tcp, v4, 81, Sh, 0, &[1, 2, 3]),
            (Tcp, v6, 81, Sh, 0, &[1, 2, 3]),
            (Udp, v4, 83, Sh, port, &[2, 1, 1]),
            (Tcp, v4, 82, Mh, 0, &[1, 2, 3]),
            (Udp, v6, 82, Mh, 0, &[3, 1, 1]),
            (Tcp, v6, 84, Mh, port, &[1, 1, 2]),
            // Kept by uvs: persistence, live counts, a NAT server.
            (Tcp, v4, 90, Rr, 0, &[1]),
            (Tcp, v4, 91, Lc, 0, &[1]),
            (Tcp, v4, 92, Rr, 0, &[1]),
        ]
    }

    /// The table: each spec's service with DR servers of its family on
    /// link 0 (MAC 2:aa:0:0:service:server), but a persistent one and a
    /// NAT server where named.
    fn table() -> Table {
        let services = specs()
            .into_iter()
            .enumerate()
            .map(|(si, (proto, vip, port, kind, flags, weights))| {
                let forward = if si == NAT {
                    Forward::Masq
                } else {
                    Forward::Route
                };
                let dests: Vec<_> = weights.iter().map(|_| ([0; 4], port, forward)).collect();
                let mut s = service(proto, [0; 4], &dests);
                s.id = si as u64 + 1;
                s.key = ServiceKey::addr(proto, vip, port);
                s.scheduler = kind;
                s.flags = SchedFlags(flags);
                if si == PERSISTENT {
                    s.persistence = Some(Persistence {
                        timeout: 360,
                        netmask: Ipv4Addr::BROADCAST,
                        prefix6: 128,
                    });
                }
                for (di, (d, w)) in s.dests.iter_mut().zip(weights).enumerate() {
                    let n = (si * 8 + di + 1) as u16;
                    d.id = 1000 + u64::from(n);
                    d.addr = match vip {
                        IpAddr::V4(_) => Ipv4Addr::new(198, 18, 1, n as u8).into(),
                        IpAddr::V6(_) => Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 1, n).into(),
                    };
                    d.mac = MacAddr([2, 0xaa, 0, 0, si as u8, di as u8]);
                    (d.weight, d.listed_weight, d.last_weight) = (*w, *w, *w);
                }
                s
            })
            .collect();
        Table::new(1, services, Default::default())
    }

    /// The hook a frame runs through, and its verdicts.
    #[derive(Debug, Clone, Copy)]
    enum Hook {
        Xdp,
        Tc,
    }

    impl Hook {
        /// Forwarded by the program itself.
        fn forwards(self) -> u32 {
            match self {
                Hook::Xdp => XDP_TX,
                Hook::Tc => TC_ACT_REDIRECT,
            }
        }

        /// Up to uvs: steered to its socket, or passed on.
        fn up(self) -> u32 {
            match self {
                Hook::Xdp => XDP_REDIRECT,
                Hook::Tc => TC_ACT_OK,
            }
        }

        /// The client that sends this hook's frames (no flow is shared).
        fn client(self) -> ([u8; 4], Ipv6Addr) {
            let n = self as u8 + 1;
            let six = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 2, u16::from(n));
            ([198, 18, 2, n], six)
        }
    }

    /// The event the programs write for `frame`.
    fn event(frame: &[u8], what: KernelFlowEvent) -> KernelFlow {
        KernelFlow {
            link: 0,
            flow: tuple(frame),
            client_mac: CL_MAC,
            what,
        }
    }

    /// The loaded object, the table its maps were filled from, and the
    /// maps the fixtures read or flip; `failed` collects what went wrong.
    struct Rig {
        bpf: aya::Ebpf,
        _xsk: Xsk,
        table: Table,
        kernel: KernelTable,
        flows: HashMap<MapData, FlowKey, FlowValue>,
        flows6: HashMap<MapData, Flow6Key, FlowValue>,
        events: RingBuf<MapData>,
        fast: Array<MapData, u32>,
        room: Array<MapData, u32>,
        counts: PerCpuArray<MapData, u64>,
        /// EVENT_NEW records read so far.
        news: u64,
        failed: Vec<String>,
    }

    impl Rig {
        fn new() -> Rig {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
            let (mut bpf, xsk) = object(aya::EbpfLoader::new().map_max_entries("events", page));
            let table = table();
            let locals = [Ipv4Addr::new(198, 18, 2, 100).into()];
            Claims::default()
                .sync(&mut bpf, &Claims::of(&table, &locals))
                .expect("filling the claim maps");
            let kernel = KernelTable::of(&table, 0, DIR_MAC);
            Scheduling::default()
                .sync(&mut [&mut bpf], vec![kernel.clone()])
                .expect("filling services, slots and reals");
            let mut take = |name: &str| bpf.take_map(name).unwrap();
            let (flows, flows6, events) = (take("flows"), take("flows6"), take("events"));
            let (fast, room, counts) = (take("fast"), take("room"), take("sched_counts"));
            let mut rig = Rig {
                _xsk: xsk,
                table,
                kernel,
                flows: flows.try_into().unwrap(),
                flows6: flows6.try_into().unwrap(),
                events: events.try_into().unwrap(),
                fast: fast.try_into().unwrap(),
                room: room.try_into().unwrap(),
                counts: counts.try_into().unwrap(),
                news: 0,
                failed: Vec::new(),
                bpf,
            };
            for gate in [("fast", 0), ("fast", 1), ("room", 0)] {
                rig.set(gate, true);
            }
            rig
        }

        /// Sets element `i` of map `fast` or `room`.
        fn set(&mut self, (map, i): (&str, u32), on: bool) {
            let a = if map == "fast" {
                &mut self.fast
            } else {
                &mut self.room
            };
            a.set(i, u32::from(on), 0).unwrap();
        }

        fn fail(&mut self, what: String) {
            self.failed.push(what);
        }

        fn run(&self, hook: Hook, frame: &[u8]) -> (u32, Vec<u8>) {
            let (xdp, tc) = programs(&self.bpf);
            match hook {
                Hook::Xdp => run(xdp, frame),
                Hook::Tc => run(tc, frame),
            }
        }

        /// The records in the ring, read as uvs reads them.
        fn events(&mut self) -> Vec<KernelFlow> {
            let mut got = Vec::new();
            while let Some(r) = self.events.next() {
                match events::parse(0, &r) {
                    Some(k) => got.push(k),
                    None => self
                        .failed
                        .push(format!("a record uvs cannot read: {:?}", &*r)),
                }
            }
            self.news += got
                .iter()
                .filter(|k| matches!(k.what, KernelFlowEvent::New { .. }))
                .count() as u64;
            got
        }

        /// Checks that the ring holds `want` exactly.
        fn expect_events(&mut self, hook: Hook, what: &str, want: &[KernelFlow]) {
            let got = self.events();
            if got != want {
                self.fail(format!("{hook:?}: {what}: events {got:?}, want {want:?}"));
            }
        }

        /// The flow map's entry for `frame`'s flow.
        fn flow(&self, frame: &[u8]) -> Option<FlowValue> {
            match tuple(frame) {
                AnyFlow::V4(t) => self.flows.get(&FlowKey::of(&t), 0).ok(),
                AnyFlow::V6(t) => self.flows6.get(&Flow6Key::of(&t), 0).ok(),
            }
        }

        /// Per-CPU counter `i` of `sched_counts`, summed.
        fn count(&self, i: u32) -> u64 {
            self.counts.get(&i, 0).unwrap().iter().sum()
        }

        /// Runs `frame`, which the program must forward to one of service
        /// `si`'s servers, rewritten as DR does: that server's index.
        fn forwards(&mut self, hook: Hook, what: &str, frame: &[u8], si: usize) -> Option<usize> {
            let (verdict, out) = self.run(hook, frame);
            let dests = &self.table.services[si].dests;
            let to = dests
                .iter()
                .position(|d| out.get(..6) == Some(&d.mac.0[..]));
            let want = to.map(|i| match frame[12..14] {
                [0x08, 0x00] => forwarded(frame, dests[i].mac.0),
                _ => forwarded6(frame, dests[i].mac.0),
            });
            if verdict != hook.forwards() || want.as_ref() != Some(&out) {
                let bytes = if want.is_some() {
                    "differ"
                } else {
                    "to no server"
                };
                self.fail(format!(
                    "{hook:?}: {what}: verdict {verdict}, bytes {bytes}"
                ));
                return None;
            }
            to
        }

        /// Runs `frame`, which must go up to uvs as it is: no event, no
        /// flow entered.
        fn goes_up(&mut self, hook: Hook, what: &str, frame: &[u8]) {
            let (verdict, out) = self.run(hook, frame);
            if verdict != hook.up() || out != frame {
                self.fail(format!(
                    "{hook:?}: {what}: verdict {verdict}, not up as it came"
                ));
            }
            self.expect_events(hook, what, &[]);
            if self.flow(frame).is_some() {
                self.fail(format!("{hook:?}: {what}: a flow was entered"));
            }
        }

        /// Checks `frame`'s flow entry: to server `di` of service `si`,
        /// in `state`, `packets` forwarded, the service's interval (a TCP
        /// flow past its SYN: the established one, which the program set
        /// when it reported the client's ACK; a UDP flow's are the same).
        fn expect_flow(&mut self, hook: Hook, frame: &[u8], (si, di): (usize, usize), state: u8) {
            let dmac = self.table.services[si].dests[di].mac.0;
            let every = self.kernel.services.values().find(|s| s.index == si as u32);
            let got = self.flow(frame);
            let ok = got.is_some_and(|f| {
                (f.dmac, f.smac, f.state) == (dmac, DIR_MAC, state)
                    && f.bytes == f.packets * (frame.len() as u64 - 14)
                    && every.is_some_and(|s| match state {
                        FLOW_SYN => s.every_ns == f.every_ns,
                        _ => s.est_every_ns == f.every_ns,
                    })
            });
            if !ok {
                self.fail(format!("{hook:?}: flow {:?}: entry {got:?}", tuple(frame)));
            }
        }

        /// Runs `frame`, a SYN that reuses a closing flow's port: the
        /// program must schedule it as a new flow of rr's (forwarded,
        /// reported new), not send it up.
        fn scheduled_anew(&mut self, hook: Hook, what: &str, frame: &[u8]) {
            let again = self.forwards(hook, what, frame, RR);
            let news = self.events();
            if again.is_none()
                || !matches!(news.as_slice(), [k] if matches!(k.what, KernelFlowEvent::New { .. }))
            {
                self.fail(format!("{hook:?}: {what}: {again:?}, {news:?}"));
            }
        }

        /// The id of server `di` of service `si`.
        fn id(&self, si: usize, di: usize) -> u64 {
            self.table.services[si].dests[di].id
        }
    }

    /// rr over two servers: a SYN scheduled, entered and reported; the
    /// next client port to the other server; the first ACK reported
    /// established, the next not.
    fn round_robin(rig: &mut Rig, hook: Hook) {
        let (c, _) = hook.client();
        let syn = tcp4(c, VIP, 40000, 80, SYN);
        let Some(first) = rig.forwards(hook, "rr SYN", &syn, RR) else {
            return;
        };
        // The first frame counted in the report, not in the entry.
        let new = |di| KernelFlowEvent::New {
            dest_id: rig.id(RR, di),
            tcp_flags: SYN,
            packets: 1,
            bytes: syn.len() as u64 - 14,
        };
        let (new_first, new_other) = (new(first), new(1 - first));
        rig.expect_events(hook, "rr SYN", &[event(&syn, new_first)]);
        rig.expect_flow(hook, &syn, (RR, first), FLOW_SYN);
        // The report woke worker 0 (sched.h: submit), and says when (set
        // back for the next hook's).
        let mut woke: Array<&mut MapData, u64> =
            rig.bpf.map_mut("woke").unwrap().try_into().unwrap();
        let when = woke.get(&0, 0).unwrap_or(0);
        woke.set(0, 0, 0).unwrap();
        if when == 0 {
            rig.fail(format!("{hook:?}: rr SYN: woke[0] not written"));
        }
        let syn2 = tcp4(c, VIP, 40001, 80, SYN);
        if rig.forwards(hook, "rr second SYN", &syn2, RR) != Some(1 - first) {
            rig.fail(format!("{hook:?}: rr second SYN: not to the other server"));
        }
        rig.expect_events(hook, "rr second SYN", &[event(&syn2, new_other)]);
        let ack = tcp4(c, VIP, 40000, 80, ACK);
        for (what, want) in [
            (
                "rr first ACK",
                vec![event(&ack, KernelFlowEvent::Established)],
            ),
            ("rr second ACK", vec![]),
        ] {
            if rig.forwards(hook, what, &ack, RR) != Some(first) {
                rig.fail(format!("{hook:?}: {what}: not to the SYN's server"));
            }
            rig.expect_events(hook, what, &want);
            rig.expect_flow(hook, &ack, (RR, first), 0);
        }
        // The client's FIN: reported and forwarded, the flow closing, a
        // retransmitted FIN forwarded unreported; an RST then: reported,
        // the flow closed, once only; then a SYN that reuses the port is a
        // new flow, to the next server.
        for (flags, state) in [(FIN | ACK, FLOW_CLOSING), (RST, FLOW_CLOSED)] {
            let frame = tcp4(c, VIP, 40000, 80, flags);
            let report = KernelFlowEvent::Close { tcp_flags: flags };
            for (again, want) in [(false, vec![event(&frame, report)]), (true, vec![])] {
                let what = format!("rr flags {flags:#x}{}", if again { " again" } else { "" });
                if rig.forwards(hook, &what, &frame, RR) != Some(first) {
                    rig.fail(format!("{hook:?}: {what}: not to the SYN's server"));
                }
                rig.expect_events(hook, &what, &want);
                rig.expect_flow(hook, &frame, (RR, first), state);
            }
        }
        rig.scheduled_anew(hook, "rr SYN reusing a closing flow", &syn);
    }

    /// sh and mh: for 200 pseudo-random clients each, the server the
    /// program picks is the one uvs's own scheduler picks.
    fn hashed(rig: &mut Rig, hook: Hook, si: usize) {
        let s = &rig.table.services[si];
        let (kind, vip, port, proto) = (s.scheduler, s.key.addr, s.key.port, s.key.protocol);
        let mut st = SchedState::new(kind, &Member::of(&s.dests));
        let mut wrong = 0;
        for n in 0..200u64 {
            let r = crate::lvs::splitmix((hook as u64) << 40 | (si as u64) << 32 | n);
            let sport = 1024 + (r >> 48) as u16 % 60000;
            let client: IpAddr = match vip {
                IpAddr::V4(_) => Ipv4Addr::from(0xc612_0000 | (r as u32 & 0x1_ffff)).into(),
                IpAddr::V6(_) => Ipv6Addr::from(0x2001_0002_0000u128 << 80 | u128::from(r)).into(),
            };
            let frame = match (client, vip, proto) {
                (IpAddr::V4(c), IpAddr::V4(v), Protocol::Tcp) => {
                    tcp4(c.octets(), v.octets(), sport, port, SYN)
                }
                (IpAddr::V4(c), IpAddr::V4(v), _) => udp4(c.octets(), v.octets(), sport, port),
                (IpAddr::V6(c), IpAddr::V6(v), Protocol::Tcp) => {
                    tcp6_flags((c, v), sport, port, SYN)
                }
                (IpAddr::V6(c), IpAddr::V6(v), _) => udp6((c, v), sport, port),
                _ => unreachable!("a client of the VIP's family"),
            };
            let pool = rig.table.pool(si).unwrap();
            let want = st.schedule(&pool, &SchedKey::new(client, sport, vip));
            let what = format!("{kind:?} {vip}:{port} from {client}:{sport}");
            let got = rig.forwards(hook, &what, &frame, si);
            let tcp_flags = if proto == Protocol::Tcp { SYN } else { 0 };
            let reported = want.map(|di| {
                let dest_id = rig.id(si, di);
                let (packets, bytes) = (1, frame.len() as u64 - 14);
                let what = KernelFlowEvent::New {
                    dest_id,
                    tcp_flags,
                    packets,
                    bytes,
                };
                event(&frame, what)
            });
            rig.expect_events(hook, &what, reported.as_slice());
            wrong += usize::from(got != want);
        }
        if wrong > 0 {
            let what = format!("{kind:?} on {vip}:{port}");
            rig.fail(format!(
                "{hook:?}: {what}: {wrong} of 200 clients not to uvs's choice"
            ));
        }
    }

    /// wrr 3:2:1: 60 new UDP flows split exactly 30/20/10.
    fn weighted(rig: &mut Rig, hook: Hook) {
        let (c, _) = hook.client();
        let mut split = [0; 3];
        for port in 50000..50060 {
            let d = udp4(c, VIP, port, 53);
            if let Some(di) = rig.forwards(hook, "wrr datagram", &d, WRR) {
                split[di] += 1;
            }
            rig.events();
        }
        if split != [30, 20, 10] {
            rig.fail(format!("{hook:?}: wrr 3:2:1 split 60 flows {split:?}"));
        }
    }

    /// What the programs leave to uvs.
    fn up(rig: &mut Rig, hook: Hook) {
        let (c, c6) = hook.client();
        let to = |sport, dport| tcp4(c, VIP, sport, dport, SYN);
        let syn = |port| to(41000 + port, 80);
        let mut other_mac = syn(1);
        other_mac[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
        let mut last_hop = syn(2);
        last_hop[22] = 1;
        let mut fragment = udp4(c, VIP, 41003, 53);
        fragment[20] |= 0x20;
        let mut last_hop6 = udp6((c6, VIP6), 41004, 53);
        last_hop6[14 + 7] = 1;
        let mut frag6 = vec![17, 0, 0, 1, 0, 0, 0, 7];
        frag6.extend_from_slice(&udp6((c6, VIP6), 41005, 53)[54..]);
        let frag6 = eth(
            DIR_MAC,
            0x86dd,
            &crate::wire::ipv6::test_packet((c6, VIP6), 44, &frag6, frag6.len()),
        );
        for (what, f) in [
            ("an ACK of an unknown flow", tcp4(c, VIP, 41010, 80, ACK)),
            ("a SYN+ACK", tcp4(c, VIP, 41011, 80, SYN | ACK)),
            ("a SYN+FIN", tcp4(c, VIP, 41012, 80, SYN | 0x01)),
            ("a SYN of a persistent service", to(41013, 90)),
            ("a SYN of an lc service", to(41014, 91)),
            ("a SYN to a port with no service", to(41015, 99)),
            ("a SYN of a NAT server's service", to(41016, 92)),
            ("a SYN to another MAC", other_mac),
            ("a SYN at TTL 1", rechecked(last_hop)),
            ("an IPv4 first fragment", rechecked(fragment)),
            ("UDP to a VIP6 at hop limit 1", last_hop6),
            ("an IPv6 fragment", frag6),
        ] {
            rig.goes_up(hook, what, &f);
        }
        for (n, gate) in [("fast", 0), ("fast", 1), ("room", 0)]
            .into_iter()
            .enumerate()
        {
            rig.set(gate, false);
            let what = format!("a SYN with {}[{}] = 0", gate.0, gate.1);
            rig.goes_up(hook, &what, &syn(20 + n as u16));
            rig.set(gate, true);
        }
    }

    pub(super) fn fixtures() -> Vec<String> {
        let mut rig = Rig::new();
        if rig.kernel.services.len() != 10 {
            rig.fail(format!(
                "services: {} (want all but the persistent and lc ones)",
                rig.kernel.services.len()
            ));
        }
        for hook in [Hook::Xdp, Hook::Tc] {
            round_robin(&mut rig, hook);
            refresh::refresh_after_fin(&mut rig, hook);
            udp::udp_to_vip6(&mut rig, hook);
            for si in HASHED {
                hashed(&mut rig, hook, si);
            }
            weighted(&mut rig, hook);
            up(&mut rig, hook);
            workers::two_workers(&mut rig, hook);
            let n = ring::ring_full(&mut rig, hook);
            println!("{hook:?}: a one-page ring held {n} events");
        }
        if rig.count(0) != rig.news {
            let (n, news) = (rig.count(0), rig.news);
            rig.fail(format!("sched_counts[0] = {n}, {news} flows reported"));
        }
        rig.failed
    }
}

#[test]
fn the_kernel_programs_schedule_new_flows_as_uvs_would() {
    if super::test_run::may_run() {
        #[cfg(uvs_xdp)]
        super::test_run::run_fixtures(run::fixtures);
    }
}
