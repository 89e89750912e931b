//! Packet fixtures for TUN in the tc program (tunnel.h), in test_run's
//! way: the object loaded, its maps filled from a published table of TUN
//! services (a tunnel source, IPv4 real servers behind a router) by the
//! code uvs runs (`KernelTable::of`, `Scheduling::sync`), crafted frames
//! run through both programs. What the tc program sends is compared with
//! what uvs's own TUN path writes for the same frame (the router's hop,
//! then `wire::tunnel`'s outer header): the same bytes, but for the id of
//! a frame without DF, which the program draws at random (its checksum is
//! checked). A frame too big once wrapped, on a virtual link one whose
//! checksum looks unfinished, and every TUN frame at the XDP program go
//! up to uvs as they came. Needs root, as test_run.

#[cfg(uvs_xdp)]
mod run {
    use super::super::claims::{Claims, tests::service};
    use super::super::maps::{FlowKey, FlowValue};
    use super::super::sched::{KernelTable, Scheduling};
    use super::super::test_frames::{DIR_MAC, forwarded, ipv4, rechecked, tcp4, tuple};
    use super::super::test_run::run::{
        TC_ACT_OK, TC_ACT_REDIRECT, XDP_REDIRECT, object, programs, run,
    };
    use crate::io::AnyFlow;
    use crate::io::xdp::xsk::Xsk;
    use crate::lvs::service::{Forward, Protocol, ServiceKey};
    use crate::lvs::table::Table;
    use crate::wire::ipip::IpipRepr;
    use crate::wire::tunnel::TunnelRepr;
    use crate::wire::{MacAddr, checksum};
    use aya::maps::{Array, HashMap, MapData};
    use std::net::Ipv4Addr;

    const VIP: [u8; 4] = [198, 18, 0, 100];
    const CLIENT: [u8; 4] = [198, 18, 2, 1];
    const TUN_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const RIP: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 11), Ipv4Addr::new(198, 18, 1, 12)];
    /// The router's MAC: the next hop of both real servers.
    const HOP: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
    /// The link's MTU in the fixtures' namespace (its loopback's).
    const MTU: usize = 1500;

    /// VIP:80/TCP to both servers and VIP:53/UDP to the first, by rr,
    /// all TUN, from tunnel source TUN_SOURCE.
    fn table() -> Table {
        let tun = |port| RIP.map(|r| (r.octets(), port, Forward::Tunnel));
        let mut tcp = service(Protocol::Tcp, VIP, &tun(80));
        let mut udp = service(Protocol::Udp, VIP, &tun(53)[..1]);
        udp.key = ServiceKey::addr(Protocol::Udp, Ipv4Addr::from(VIP), 53);
        for (si, s) in [&mut tcp, &mut udp].into_iter().enumerate() {
            s.id = si as u64 + 1;
            for (di, d) in s.dests.iter_mut().enumerate() {
                d.id = 100 + (si * 8 + di) as u64;
                d.mac = MacAddr(HOP);
            }
        }
        Table::with_tun_source(1, vec![tcp, udp], Default::default(), TUN_SOURCE)
    }

    /// `f` as uvs's own TUN path sends it to `rip`: TTL − 1, then the
    /// outer header of `wire::tunnel`, to the next hop's MAC from ours.
    fn wrapped(f: &[u8], rip: Ipv4Addr) -> Vec<u8> {
        let hopped = forwarded(f, HOP);
        let mut out = vec![0u8; hopped.len() + 20];
        let tun = TunnelRepr::V4(IpipRepr {
            src: TUN_SOURCE,
            dst: rip,
        });
        let n = tun.emit(&hopped[14..], &mut out, 14, &mut 0).unwrap();
        out[..14].copy_from_slice(&hopped[..14]);
        out.truncate(n);
        out
    }

    /// A UDP datagram of `len` IP bytes from the client's port `sport` to
    /// VIP:53 with TOS `tos`, DF if `df`.
    fn udp(sport: u16, len: usize, tos: u8, df: bool) -> Vec<u8> {
        let mut seg = vec![0u8; len - 20];
        seg[0..2].copy_from_slice(&sport.to_be_bytes());
        seg[2..4].copy_from_slice(&53u16.to_be_bytes());
        seg[4..6].copy_from_slice(&((len - 20) as u16).to_be_bytes());
        let mut f = ipv4(CLIENT, VIP, 17, &seg);
        f[15] = tos;
        if !df {
            f[20] = 0;
        }
        rechecked(f)
    }

    /// A UDP datagram from the client's port `sport` to VIP:53 whose
    /// checksum holds only the pseudo-header's sum, as a local sender on a
    /// veth leaves it for the receiving kernel to finish.
    fn unfinished(sport: u16) -> Vec<u8> {
        let mut f = udp(sport, 100, 0, true);
        let sum = checksum::pseudo_header(CLIENT.into(), VIP.into(), 17, 80);
        f[40..42].copy_from_slice(&(!checksum::finish(sum)).to_be_bytes());
        f
    }

    type Flows = HashMap<MapData, FlowKey, FlowValue>;

    /// The object for a link that is virtual or not, its maps filled from
    /// [`table`] and its gates open.
    fn loaded(virtual_link: bool) -> (aya::Ebpf, Xsk, Flows) {
        let on = u32::from(virtual_link);
        let mut loader = aya::EbpfLoader::new();
        loader.override_global("virtual_link", &on, true);
        let (mut bpf, xsk) = object(&mut loader);
        let table = table();
        Claims::default()
            .sync(&mut bpf, &Claims::of(&table, &[]))
            .expect("filling the claim maps");
        let kernel = KernelTable::of(&table, 0, DIR_MAC);
        assert_eq!(kernel.services.len(), 2, "{:?}", kernel.services);
        Scheduling::default()
            .sync(&mut [&mut bpf], vec![kernel])
            .expect("filling services, slots and reals");
        for (map, i) in [("fast", 0), ("fast", 1), ("room", 0)] {
            let mut a: Array<_, u32> = bpf.map_mut(map).unwrap().try_into().unwrap();
            a.set(i, 1, 0).unwrap();
        }
        let flows = bpf.take_map("flows").unwrap().try_into().unwrap();
        (bpf, xsk, flows)
    }

    /// Records a difference between what a program did and `want`.
    fn expect(failed: &mut Vec<String>, what: &str, got: (u32, Vec<u8>), want: (u32, Vec<u8>)) {
        if got != want {
            failed.push(format!("{what}: got {got:x?}\nwant {want:x?}"));
        }
    }

    /// The real server the program entered `f`'s flow for, if it did so
    /// as TUN from TUN_SOURCE through the router.
    fn entered(flows: &Flows, f: &[u8]) -> Option<Ipv4Addr> {
        let AnyFlow::V4(t) = tuple(f) else {
            return None;
        };
        let v = flows.get(&FlowKey::of(&t), 0).ok()?;
        let ours = v.dmac == HOP && v.smac == DIR_MAC && v.tun_saddr == TUN_SOURCE.octets();
        ours.then_some(Ipv4Addr::from(v.tun_daddr))
    }

    /// The programs on a NIC's link.
    fn on_a_nic(failed: &mut Vec<String>) {
        let (bpf, _xsk, flows) = loaded(false);
        let (xdp, tc) = programs(&bpf);
        // A SYN: scheduled by the tc program, entered as TUN, wrapped.
        let syn = tcp4(CLIENT, VIP, 40000, 80, 0x02);
        let got = run(tc, &syn);
        let Some(rip) = entered(&flows, &syn).filter(|r| RIP.contains(r)) else {
            failed.push(format!("the SYN's flow is not entered as TUN: {got:x?}"));
            return;
        };
        expect(failed, "SYN", got, (TC_ACT_REDIRECT, wrapped(&syn, rip)));
        // Its ACK, to the same server.
        let ack = tcp4(CLIENT, VIP, 40000, 80, 0x10);
        let want = (TC_ACT_REDIRECT, wrapped(&ack, rip));
        expect(failed, "ACK", run(tc, &ack), want);
        // The XDP program leaves TUN to uvs: neither a known flow's frame
        // nor a new one's is forwarded, and no flow is entered.
        expect(
            failed,
            "XDP: ACK",
            run(xdp, &ack),
            (XDP_REDIRECT, ack.clone()),
        );
        let syn2 = tcp4(CLIENT, VIP, 40001, 80, 0x02);
        expect(
            failed,
            "XDP: SYN",
            run(xdp, &syn2),
            (XDP_REDIRECT, syn2.clone()),
        );
        if entered(&flows, &syn2).is_some() {
            failed.push("XDP: the SYN's flow was entered".into());
        }

        // UDP without DF, CE marked: the outer TOS ECT(0), a random id
        // whose checksum is right.
        let dgram = udp(5000, 100, 0x03, false);
        let (verdict, bytes) = run(tc, &dgram);
        let mut want = wrapped(&dgram, RIP[0]);
        if bytes.len() == want.len() {
            want[18..20].copy_from_slice(&bytes[18..20]);
            want = rechecked(want);
        }
        expect(
            failed,
            "UDP without DF",
            (verdict, bytes),
            (TC_ACT_REDIRECT, want),
        );

        // The largest datagram that fits the link's MTU once wrapped, and
        // one byte more: that one goes up to uvs as it came.
        let fits = udp(5000, MTU - 20, 0, true);
        let want = (TC_ACT_REDIRECT, wrapped(&fits, RIP[0]));
        expect(failed, "fits", run(tc, &fits), want);
        let big = udp(5000, MTU - 19, 0, true);
        expect(failed, "too big", run(tc, &big), (TC_ACT_OK, big.clone()));
        // A checksum left unfinished: the NIC finishes it.
        let half = unfinished(6000);
        let want = (TC_ACT_REDIRECT, wrapped(&half, RIP[0]));
        expect(failed, "NIC: unfinished", run(tc, &half), want);
    }

    pub(super) fn fixtures() -> Vec<String> {
        let mut failed = Vec::new();
        let set_mtu = std::process::Command::new("ip")
            .args(["link", "set", "lo", "mtu", &MTU.to_string()])
            .status();
        if !set_mtu.as_ref().is_ok_and(|s| s.success()) {
            return vec![format!("ip link set lo mtu {MTU}: {set_mtu:?}")];
        }
        on_a_nic(&mut failed);
        // On a virtual link: an unfinished checksum goes up (uvs finishes
        // it), a finished one is wrapped.
        let (bpf, _xsk, _) = loaded(true);
        let (_, tc) = programs(&bpf);
        let (half, whole) = (unfinished(6000), udp(6001, 100, 0, true));
        let want = (TC_ACT_OK, half.clone());
        expect(&mut failed, "virtual: unfinished", run(tc, &half), want);
        let want = (TC_ACT_REDIRECT, wrapped(&whole, RIP[0]));
        expect(&mut failed, "virtual: finished", run(tc, &whole), want);
        failed
    }
}

#[test]
fn the_tc_program_wraps_tun_flows_as_uvs_does() {
    if super::test_run::may_run() {
        #[cfg(uvs_xdp)]
        super::test_run::run_fixtures(run::fixtures);
    }
}
