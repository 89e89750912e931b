//! Packet fixtures for the kernel programs, as Katran's tester runs its
//! own: the compiled object is loaded (not attached), its maps filled as
//! for a published table, and each crafted frame is run through
//! `uvs_steer` and `uvs_tc_forward` with BPF_PROG_TEST_RUN; the verdict and
//! the bytes the program leaves are checked against what is expected.
//! Needs root (CAP_BPF, CAP_NET_ADMIN): skipped without it off CI, failed
//! under CI. An AF_XDP socket bound to the loopback of a namespace of its
//! own stands in the `xsks` map, so a claimed frame is XDP_REDIRECT.

#[cfg(uvs_xdp)]
pub(super) mod run {
    use super::super::claims::{Claims, tests::service};
    use super::super::maps::{Flow6Key, FlowKey, FlowValue};
    use super::super::test_frames::{
        DIR_MAC, eth, forwarded, forwarded6, tcp, tcp4, tcp6_flags, udp6,
    };
    use crate::io::xdp::xsk::Xsk;
    use crate::lvs::service::{Forward, Protocol, ServiceKey};
    use crate::lvs::table::Table;
    use crate::wire::checksum;
    use aya::programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const XDP_PASS: u32 = 2;
    pub(in crate::io::bpf) const XDP_TX: u32 = 3;
    pub(in crate::io::bpf) const XDP_REDIRECT: u32 = 4;
    pub(in crate::io::bpf) const TC_ACT_OK: u32 = 0;
    pub(in crate::io::bpf) const TC_ACT_REDIRECT: u32 = 7;

    const RS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const VIP: [u8; 4] = [198, 18, 0, 100];
    const CLIENT: [u8; 4] = [198, 18, 0, 10];
    const NAT: [u8; 4] = [198, 18, 2, 11];
    const LOCAL: [u8; 4] = [198, 18, 2, 1];
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
    const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
    const NAT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 0x11);
    const LOCAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 1);

    /// An IPv6/TCP frame to the director's MAC (an ACK), checksum right.
    fn tcp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
        tcp6_flags((src, dst), sport, dport, 0x10)
    }

    /// An IPv6/TCP ACK from the client to VIP6 behind a destination
    /// options header (8 bytes of padding).
    fn tcp6_ext(sport: u16) -> Vec<u8> {
        let seg = tcp(sport, 80, 0x10, |n| {
            checksum::pseudo_header_v6(CLIENT6, VIP6, 6, n)
        });
        let mut p = vec![6, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&seg);
        let ip = crate::wire::ipv6::test_packet((CLIENT6, VIP6), 60, &p, p.len());
        eth(DIR_MAC, 0x86dd, &ip)
    }

    /// A neighbour solicitation for `target` (not checksummed: the program
    /// reads no further than the next header), to `dst` at `mac`.
    fn ns(dst: Ipv6Addr, mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        let ip = crate::wire::ipv6::test_packet((CLIENT6, dst), 58, &icmp, icmp.len());
        eth(mac, 0x86dd, &ip)
    }

    /// The offloaded IPv6 flows: TCP from port `OFF6_TCP` to VIP6:80 and
    /// UDP from `OFF6_UDP` to VIP6:53.
    const OFF6_TCP: u16 = 40002;
    const OFF6_UDP: u16 = 5000;

    fn offload6(bpf: &mut aya::Ebpf, value: FlowValue) {
        let map = bpf.map_mut("flows6").unwrap();
        let mut flows: aya::maps::HashMap<_, Flow6Key, FlowValue> = map.try_into().unwrap();
        for (sport, dport, proto) in [(OFF6_TCP, 80u16, 6), (OFF6_UDP, 53, 17)] {
            let key = Flow6Key {
                saddr: CLIENT6.octets(),
                daddr: VIP6.octets(),
                sport: sport.to_be_bytes(),
                dport: dport.to_be_bytes(),
                proto,
                pad: [0; 3],
            };
            flows.insert(key, value, 0).unwrap();
        }
    }

    /// A frame through both programs: the verdict of each, and the bytes
    /// a forwarding program leaves (the others leave the frame as it is).
    struct Case {
        what: &'static str,
        frame: Vec<u8>,
        xdp: u32,
        tc: u32,
        forwarded: Vec<u8>,
    }

    impl Case {
        /// A frame both programs forward, rewritten.
        fn forwarded(what: &'static str, frame: Vec<u8>) -> Case {
            let forwarded = forwarded6(&frame, RS_MAC);
            Case {
                what,
                frame,
                xdp: XDP_TX,
                tc: TC_ACT_REDIRECT,
                forwarded,
            }
        }

        /// A frame that goes to uvs: steered by XDP, passed on by tc.
        fn to_uvs(what: &'static str, frame: Vec<u8>) -> Case {
            Case {
                what,
                forwarded: frame.clone(),
                frame,
                xdp: XDP_REDIRECT,
                tc: TC_ACT_OK,
            }
        }

        /// The bytes after a program's `verdict`.
        fn bytes(&self, verdict: u32) -> &[u8] {
            match verdict {
                XDP_TX | TC_ACT_REDIRECT => &self.forwarded,
                _ => &self.frame,
            }
        }
    }

    /// The IPv6 offloaded-flow cases of both programs.
    fn flows6_cases() -> Vec<Case> {
        let vip = (CLIENT6, VIP6);
        let ack = tcp6(CLIENT6, VIP6, OFF6_TCP, 80);
        let mut last_hop = ack.clone();
        last_hop[14 + 7] = 1;
        // The TCP checksum field holds only the pseudo-header's sum, as a
        // veth's CHECKSUM_PARTIAL frame does: XDP leaves it to uvs; tc
        // sees the skb's state and forwards it.
        let mut partial = ack.clone();
        let sum = checksum::fold(checksum::pseudo_header_v6(CLIENT6, VIP6, 6, 24));
        partial[54 + 16..54 + 18].copy_from_slice(&sum.to_be_bytes());
        let flags = |f| tcp6_flags(vip, OFF6_TCP, 80, f);
        vec![
            Case::forwarded("IPv6 offloaded TCP flow", ack.clone()),
            Case::forwarded("IPv6 offloaded UDP flow", udp6(vip, OFF6_UDP, 53)),
            Case::to_uvs("IPv6 SYN of an offloaded flow", flags(0x02)),
            // Reported (sched.h: report_fin) and forwarded.
            Case::forwarded("IPv6 FIN of an offloaded flow", flags(0x11)),
            Case::forwarded("IPv6 RST of an offloaded flow", flags(0x04)),
            Case::to_uvs("IPv6 flow behind an extension header", tcp6_ext(OFF6_TCP)),
            Case::to_uvs("IPv6 offloaded flow at hop limit 1", last_hop),
            Case::to_uvs(
                "IPv6 flow not offloaded",
                tcp6(CLIENT6, VIP6, OFF6_TCP + 1, 80),
            ),
            Case::to_uvs(
                "IPv6 flow cut before its flags",
                ack[..14 + 40 + 13].to_vec(),
            ),
            Case {
                xdp: XDP_REDIRECT,
                ..Case::forwarded("IPv6 offloaded flow, checksum unfinished", partial)
            },
        ]
    }

    /// The table the maps are filled from: a TCP DR service on VIP, one
    /// with a NAT server, and the same two on VIP6.
    fn table() -> Table {
        let dr = service(
            Protocol::Tcp,
            VIP,
            &[([198, 18, 0, 11], 80, Forward::Route)],
        );
        let nat = service(
            Protocol::Tcp,
            [198, 18, 0, 101],
            &[(NAT, 8080, Forward::Masq)],
        );
        let mut dr6 = service(Protocol::Tcp, [0; 4], &[([0; 4], 80, Forward::Route)]);
        dr6.key = ServiceKey::addr(Protocol::Tcp, IpAddr::from(VIP6), 80);
        dr6.dests[0].addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11).into();
        let mut nat6 = service(Protocol::Tcp, [0; 4], &[([0; 4], 8080, Forward::Masq)]);
        nat6.key = ServiceKey::addr(Protocol::Tcp, IpAddr::from(VIP6), 81);
        nat6.dests[0].addr = NAT6.into();
        Table::new(1, vec![dr, nat, dr6, nat6], Default::default())
    }

    fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// One frame through one program: its verdict and the bytes after.
    pub(in crate::io::bpf) fn run<P>(p: &P, frame: &[u8]) -> (u32, Vec<u8>)
    where
        P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
    {
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::new()
        };
        let r = p
            .test_run(opts)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"));
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// The object as `loader` loads it (frames out of the link, not to
    /// a veth peer), both programs through the verifier, and an AF_XDP
    /// socket (on this namespace's loopback) on queue 0 of `xsks`: what
    /// the XDP program steers to uvs is XDP_REDIRECT.
    pub(in crate::io::bpf) fn object(loader: &mut aya::EbpfLoader) -> (aya::Ebpf, Xsk) {
        let mut bpf = loader
            .override_global("to_peer", &0u32, true)
            .load(super::super::PROGRAM)
            .expect("loading the object");
        // The xsks map takes only a bound AF_XDP socket.
        let xsk = Xsk::open(1, 0).expect("an AF_XDP socket on this namespace's loopback");
        {
            let map = bpf.map_mut("xsks").unwrap();
            let mut xsks: aya::maps::XskMap<_> = map.try_into().unwrap();
            xsks.set(0, xsk.fd(), 0).expect("registering the socket");
        }
        for name in ["uvs_steer", "uvs_tc_forward"] {
            let p = bpf.program_mut(name).unwrap();
            match name {
                "uvs_steer" => <&mut Xdp>::try_from(p).unwrap().load(),
                _ => <&mut SchedClassifier>::try_from(p).unwrap().load(),
            }
            .unwrap_or_else(|e| panic!("the verifier refused {name}: {e}"));
        }
        (bpf, xsk)
    }

    /// Both programs of `bpf` (loaded by [`object`]).
    pub(in crate::io::bpf) fn programs(bpf: &aya::Ebpf) -> (&Xdp, &SchedClassifier) {
        let xdp = bpf.program("uvs_steer").unwrap().try_into().unwrap();
        let tc = bpf.program("uvs_tc_forward").unwrap().try_into().unwrap();
        (xdp, tc)
    }

    pub(super) fn fixtures() -> Vec<String> {
        let (mut bpf, _xsk) = object(&mut aya::EbpfLoader::new());
        let locals = [Ipv4Addr::from(LOCAL).into(), LOCAL6.into()];
        Claims::default()
            .sync(&mut bpf, &Claims::of(&table(), &locals))
            .expect("filling the claim maps");
        {
            let map = bpf.map_mut("fast").unwrap();
            let mut fast: aya::maps::Array<_, u32> = map.try_into().unwrap();
            fast.set(0, 1, 0).unwrap();
            let map = bpf.map_mut("flows").unwrap();
            let mut flows: aya::maps::HashMap<_, FlowKey, FlowValue> = map.try_into().unwrap();
            let key = FlowKey {
                saddr: CLIENT,
                daddr: VIP,
                sport: 40000u16.to_be_bytes(),
                dport: 80u16.to_be_bytes(),
                proto: 6,
                pad: [0; 3],
            };
            let value = FlowValue {
                dmac: RS_MAC,
                smac: DIR_MAC,
                state: 0,
                pad: [0; 3],
                tun_saddr: [0; 4],
                tun_daddr: [0; 4],
                packets: 0,
                bytes: 0,
                up_ns: monotonic_ns(),
                every_ns: 60_000_000_000,
                id: 0,
            };
            flows.insert(key, value, 0).unwrap();
            offload6(&mut bpf, value);
        }
        let (xdp, tc) = programs(&bpf);
        // The verifier walks every path: far below its limit of a million
        // instructions, which a loop over extension headers would near.
        let mut failed = Vec::new();
        for (name, info) in [("uvs_steer", xdp.info()), ("uvs_tc_forward", tc.info())] {
            let n = info.ok().and_then(|i| i.verified_instruction_count());
            println!("{name}: {n:?} instructions verified");
            if n.is_some_and(|n| n > 20_000) {
                failed.push(format!("{name}: {n:?} instructions verified"));
            }
        }

        let offloaded = tcp4(CLIENT, VIP, 40000, 80, 0x10);
        let syn = tcp4(CLIENT, VIP, 40000, 80, 0x02);
        let vip_new = tcp4(CLIENT, VIP, 40001, 80, 0x10);
        let nat_reply = tcp4(NAT, CLIENT, 8080, 40000, 0x10);
        let to_local = tcp4(NAT, LOCAL, 8080, 40000, 0x10);
        let other4 = tcp4(CLIENT, [198, 18, 0, 2], 40000, 22, 0x10);
        let vip6 = tcp6(CLIENT6, VIP6, 40000, 80);
        let nat6 = tcp6(NAT6, CLIENT6, 8080, 40000);
        let nat6_local = tcp6(NAT6, LOCAL6, 8080, 40000);
        let nat6_port = tcp6(NAT6, CLIENT6, 9999, 40000);
        let other6 = tcp6(
            CLIENT6,
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2),
            40000,
            22,
        );
        let sol = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x100);
        let ns_mcast = ns(sol, [0x33, 0x33, 0xff, 0, 1, 0], VIP6);
        let ns_unicast = ns(VIP6, DIR_MAC, VIP6);
        let arp = eth([0xff; 6], 0x0806, &[0u8; 28]);
        // Frames cut short: the program reads nothing past their end.
        let cut = |f: &[u8], n: usize| f[..n].to_vec();
        let mut check = |what: &str, got: (u32, Vec<u8>), verdict: u32, bytes: &[u8]| {
            if got.0 != verdict || got.1 != bytes {
                failed.push(format!(
                    "{what}: verdict {} (want {verdict}), bytes {}",
                    got.0,
                    if got.1 == bytes {
                        "as expected"
                    } else {
                        "differ"
                    }
                ));
            }
        };
        // uvs_steer.
        for (what, f, verdict) in [
            ("IPv4 to a VIP", &vip_new, XDP_REDIRECT),
            ("IPv4 SYN of an offloaded flow", &syn, XDP_REDIRECT),
            ("IPv4 NAT reply", &nat_reply, XDP_REDIRECT),
            (
                "IPv4 from a NAT server's port to the director",
                &to_local,
                XDP_PASS,
            ),
            ("IPv4 to the director", &other4, XDP_PASS),
            ("IPv6 to a VIP6", &vip6, XDP_REDIRECT),
            ("NAT66 reply", &nat6, XDP_REDIRECT),
            (
                "IPv6 from a NAT server's port to the director",
                &nat6_local,
                XDP_PASS,
            ),
            ("IPv6 from a NAT server's other port", &nat6_port, XDP_PASS),
            ("IPv6 to another address", &other6, XDP_PASS),
            ("NS to the solicited-node group", &ns_mcast, XDP_PASS),
            (
                "NS to the VIP6 itself (unreachability detection)",
                &ns_unicast,
                XDP_REDIRECT,
            ),
            ("ARP", &arp, XDP_PASS),
        ] {
            check(&format!("XDP: {what}"), run(xdp, f), verdict, f);
        }
        for (what, f, n) in [
            ("Ethernet only", &vip6, 14),
            ("IPv4 header cut", &vip_new, 14 + 19),
            ("IPv6 header cut", &vip6, 14 + 39),
            ("NAT66 reply without its port", &nat6, 14 + 41),
            ("NAT reply without its port", &nat_reply, 14 + 21),
        ] {
            let f = cut(f, n);
            check(&format!("XDP: {what}"), run(xdp, &f), XDP_PASS, &f);
        }
        let f = cut(&vip6, 14 + 40);
        check("XDP: a VIP6's bare header", run(xdp, &f), XDP_REDIRECT, &f);
        check(
            "XDP: IPv4 offloaded flow",
            run(xdp, &offloaded),
            XDP_TX,
            &forwarded(&offloaded, RS_MAC),
        );
        for c in flows6_cases() {
            let what = c.what;
            check(
                &format!("XDP: {what}"),
                run(xdp, &c.frame),
                c.xdp,
                c.bytes(c.xdp),
            );
            check(
                &format!("tc: {what}"),
                run(tc, &c.frame),
                c.tc,
                c.bytes(c.tc),
            );
        }
        // uvs_tc_forward: offloaded flows only.
        check(
            "tc: IPv4 offloaded flow",
            run(tc, &offloaded),
            TC_ACT_REDIRECT,
            &forwarded(&offloaded, RS_MAC),
        );
        for (what, f) in [
            ("SYN of an offloaded flow", &syn),
            ("IPv4 flow not offloaded", &vip_new),
            ("IPv6 to a VIP6", &vip6),
            ("NAT66 reply", &nat6),
            ("ARP", &arp),
        ] {
            check(&format!("tc: {what}"), run(tc, f), TC_ACT_OK, f);
        }
        failed
    }
}

/// Whether the kernel programs' fixtures may run here: root and a uvs
/// built with its programs; either missing fails under CI.
pub(super) fn may_run() -> bool {
    let ci = std::env::var_os("CI").is_some();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !ci,
            "the kernel programs' fixtures need root, and CI runs as root"
        );
        return false;
    }
    assert!(
        cfg!(uvs_xdp) || !ci,
        "built without the kernel programs (clang, libbpf-dev) under CI"
    );
    cfg!(uvs_xdp)
}

/// Runs `fixtures` on a thread in a network namespace of its own (its
/// loopback holds the AF_XDP socket) and fails with what they report.
#[cfg(uvs_xdp)]
pub(super) fn run_fixtures(fixtures: fn() -> Vec<String>) {
    let failed = std::thread::spawn(move || {
        // SAFETY: unshare affects the calling thread only here.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
        fixtures()
    })
    .join()
    .expect("the fixtures' thread");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn the_kernel_programs_give_each_fixture_its_verdict_and_bytes() {
    if may_run() {
        #[cfg(uvs_xdp)]
        run_fixtures(run::fixtures);
    }
}
