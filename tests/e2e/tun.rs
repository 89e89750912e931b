//! End-to-end TUN (-i): IP-in-IP from the director to real servers, one
//! on the director's segment and one behind a router, decapsulated by
//! `uvs decap` (this kernel has no ipip module), each case over IPv4
//! (IPv4-in-IPv4) and over IPv6 (IPv6-in-IPv6) where it applies.

use crate::both_families;
use crate::support::holds;
use crate::support::{Fam, Lab, RS1, VIP, count, tally, tally2};
use std::time::{Duration, Instant};

/// The real server behind the lab's router (`--routed`).
fn rr1(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "198.18.1.11",
        Fam::V6 => "2001:2:0:1::11",
    }
}

/// The kernel's counter of what it sends back for a tunnelled packet it
/// has no decapsulator for: ICMP protocol unreachable, or ICMPv6
/// parameter problem (unrecognised next header).
fn refusals(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "IcmpOutDestUnreachs",
        Fam::V6 => "Icmp6OutParmProblems",
    }
}

fn tun_lab(fam: Fam) -> Option<Lab> {
    let mut l = Lab::up_with(1, &["--routed"])?;
    l.fam = fam;
    for n in ["rs1", "rr1"] {
        l.start_server(n);
        l.start_decap(n);
    }
    l.start_director();
    for (o, port) in [("-t", 80), ("-u", 53)] {
        let vip = fam.vip_at(port);
        l.adm(&format!("-A {o} {vip} -s rr"));
        l.adm(&format!("-a {o} {vip} -r {} -i", fam.rs(1)));
        l.adm(&format!("-a {o} {vip} -r {} -i", rr1(fam)));
    }
    Some(l)
}

/// A datagram of `size` bytes to `target` does not fit once wrapped: the
/// client learns the tunnel's `mtu` and its second send fails.
pub(crate) fn learns_the_tunnel_mtu(l: &Lab, target: &str, size: &str, mtu: u64) {
    let d = l.client(&["udp-df", "--target", target, "--size", size]);
    assert_eq!(d["first_send"].to_string(), size, "{d}");
    assert_eq!(d["path_mtu"], mtu, "{d}");
    assert!(
        d["second_send_error"]
            .as_str()
            .unwrap_or("")
            .contains("too long"),
        "{d}"
    );
}

/// A lab with real server rs1 unwrapping by `unwrap` (`Lab::start_tunnel`
/// or `Lab::start_decap`), the director, and the service VIP:80 by rr.
pub(crate) fn one_server_lab(unwrap: fn(&mut Lab, &str)) -> Option<Lab> {
    let mut l = Lab::up(1)?;
    l.start_server("rs1");
    unwrap(&mut l, "rs1");
    l.start_director();
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    Some(l)
}

both_families!(tcp_udp_and_bulk_through_tun_with_a_routed_server, |fam| {
    let Some(l) = tun_lab(fam) else { return };
    // First, before TCP traffic teaches the client the tunnel's MTU: the
    // largest UDP datagram the link takes (1472 bytes, 1452 over IPv6)
    // does not fit once wrapped (20 or 40 bytes more) and the client
    // learns the tunnel's MTU: "fragmentation needed" with 1480, or
    // "packet too big" with 1460.
    let (size, mtu) = match fam {
        Fam::V4 => ("1472", 1480),
        Fam::V6 => ("1452", 1460),
    };
    learns_the_tunnel_mtu(&l, &fam.vip_at(53), size, mtu);

    let before: Vec<_> = ["rs1", "rr1"].iter().map(|n| l.nstat(n)).collect();
    let t = l.tcp_names(20);
    assert_eq!(tally2(&t, "rs1", "rr1"), (10, 10, Some(0)), "{t}");
    let u = l.udp_names(20, 30000);
    assert_eq!(tally2(&u, "rs1", "rr1"), (10, 10, Some(0)), "{u}");
    // 5 MB uploads with 1500-byte MTUs everywhere, to both servers.
    let mut servers = Vec::new();
    for _ in 0..2 {
        let up = l.upload(5000000);
        assert_eq!(up["intact"], true, "{up}");
        servers.push(up["server"].as_str().unwrap().to_string());
    }
    servers.sort();
    assert_eq!(servers, ["rr1", "rs1"]);
    // With uvs decap running, no tunnelled packet was refused.
    let k = refusals(fam);
    for (i, n) in ["rs1", "rr1"].iter().enumerate() {
        let after = l.nstat(n);
        let d = after.get(k).copied().unwrap_or(0) - before[i].get(k).copied().unwrap_or(0);
        assert_eq!(d, 0, "{n}: {k} moved by {d}");
    }
    let s = l.adm("-S -n");
    let rr = fam.at(rr1(fam), 80);
    holds(
        &s,
        &format!("-a -t {} -r {rr} -i -w 1 --tun-type ipip", fam.vip_at(80)),
    );
});

both_families!(
    without_a_decapsulator_the_kernel_refuses_the_tunnel,
    |fam| {
        // The control for the test above: the same lab with no decap on rs1
        // answers the tunnelled packet with ICMP protocol unreachable (ICMPv6
        // parameter problem) and the client gets nothing.
        let Some(mut l) = Lab::up(1) else { return };
        l.fam = fam;
        l.start_server("rs1");
        l.start_director();
        l.adm(&format!("-A -t {} -s rr", fam.vip_at(80)));
        l.adm(&format!("-a -t {} -r {} -i", fam.vip_at(80), fam.rs(1)));
        let before = l.nstat("rs1");
        let t = l.tcp_names(1);
        assert_eq!(t["errors"].as_u64(), Some(1), "{t}");
        let after = l.nstat("rs1");
        let k = refusals(fam);
        let d = after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        assert!(d > 0, "{k}: a refusal expected without a decapsulator");
    }
);

#[test]
fn advmss_on_the_real_server_keeps_uploads_inside_the_tunnel_mtu() {
    // The director cannot clamp the MSS that matters for uploads (the real
    // server's SYN-ACK goes straight to the client), so the audit tells the
    // real server to advertise a smaller one; with it, clients never send a
    // segment that is too big once tunnelled.
    let Some(l) = one_server_lab(Lab::start_tunnel) else {
        return;
    };
    l.adm(&format!("-a -t {VIP}:80 -r {} -i", RS1));
    let audit = |l: &Lab| -> serde_json::Value {
        let o = l.exec(
            "rs1",
            env!("CARGO_BIN_EXE_uvs"),
            &["audit", "--mode", "tun", "--vip", VIP, "--json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("audit JSON");
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "tcp mss eth0 198.18.0.0/24")
            .cloned()
            .unwrap_or_else(|| panic!("no MSS finding: {v}"))
    };
    let f = audit(&l);
    assert_eq!(f["status"], "warn", "{f}");
    let fix = f["fixes"][0]["command"].as_str().unwrap().to_string();
    assert!(fix.ends_with("advmss 1440"), "{fix}");
    let o = l.sh("rs1", &fix);
    assert!(
        o.status.success(),
        "{fix}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(audit(&l)["status"], "ok");

    let up = l.upload(3000000);
    assert_eq!(up["intact"], true, "{up}");
    // 1428 bytes of payload + 32 of TCP (timestamps) + 20 of IP = 1480,
    // exactly what fits in a 1500-byte MTU after IP-in-IP.
    assert_eq!(up["mss_at_connect"], 1428, "{up}");
    assert_eq!(l.dp_counter("frag_needed"), 0);

    // Without it (the route as the kernel made it) the client starts 20
    // bytes too big and depends on PMTU discovery.
    let o = l.sh(
        "rs1",
        "ip route change 198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.11",
    );
    assert!(o.status.success());
    assert_eq!(audit(&l)["status"], "warn");
    let up = l.upload(3000000);
    assert_eq!(up["intact"], true, "{up}");
    assert_eq!(up["mss_at_connect"], 1448, "{up}");
}

both_families!(
    a_new_router_mac_in_front_of_a_tun_server_is_followed,
    |fam| {
        // TUN sends to the next hop's MAC. When the router in front of a real
        // server changes its MAC (a replaced box, a new NIC), the director must
        // pick the new one up from the neighbour table, as it does for DR.
        let Some(mut l) = Lab::up_with(1, &["--routed"]) else {
            return;
        };
        l.fam = fam;
        l.start_server("rr1");
        l.start_decap("rr1");
        l.start_director();
        l.adm(&format!("-A -t {} -s rr", fam.vip_at(80)));
        l.adm(&format!("-a -t {} -r {} -i", fam.vip_at(80), rr1(fam)));
        let t = l.tcp_names(3);
        assert_eq!(tally(&t, "rr1"), (3, Some(0)), "{t}");
        // The new MAC is announced with a gratuitous ARP (an unsolicited
        // neighbour advertisement for IPv6), as a failover daemon (or the
        // kernel with arp_notify, ndisc_notify) does; the director's kernel
        // updates its neighbour entry, and uvs must follow it.
        let o = l.sh(
            "rt",
            "sysctl -qw net.ipv4.conf.eth0.arp_notify=1 net.ipv6.conf.eth0.ndisc_notify=1 && \
         ip link set dev eth0 address 02:00:5e:18:00:01",
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let t0 = Instant::now();
        loop {
            let t = l.tcp_names(3);
            if count(&t, "rr1") == 3 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the director kept sending to the old router MAC: {t}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
);

/// TUN in the tc program (the default backend) for an IPv4 service: the
/// program schedules the flows and wraps their frames itself, uvs sees
/// few of them, and the real servers' decapsulators receive them whole
/// and right. The client's link has its checksum offload off, so its
/// frames arrive finished as from across a wire: on a veth a local
/// sender's checksum is otherwise left for the receiving kernel to
/// finish, which `uvs decap` cannot, and the program sends those frames
/// up to uvs (as for the test above, whose client keeps its offloads).
/// The upload's first segments do not fit once wrapped: they go up, and
/// uvs's "fragmentation needed" teaches the client the tunnel's MTU.
#[test]
fn ipv4_tun_flows_are_wrapped_by_the_tc_program() {
    // The default backend's program: not in the UVS_IO runs.
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(l) = tun_lab(Fam::V4) else { return };
    let o = l.sh("cl", "ethtool -K eth0 tx off");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before: Vec<_> = ["rs1", "rr1"].iter().map(|n| l.nstat(n)).collect();
    let t = l.tcp_names(20);
    assert_eq!(tally2(&t, "rs1", "rr1"), (10, 10, Some(0)), "{t}");
    let u = l.udp_names(20, 30000);
    assert_eq!(tally2(&u, "rs1", "rr1"), (10, 10, Some(0)), "{u}");
    let scheduled = l.dp_counter("kernel_scheduled");
    assert!(scheduled >= 40, "kernel_scheduled {scheduled}");
    let fwd0 = l.dp_counter_settled("offload_forwarded");
    let up = l.upload(5_000_000);
    assert_eq!(up["intact"], true, "{up}");
    let fwd = l.dp_counter_settled("offload_forwarded") - fwd0;
    let rx = l.dp_counter("rx_frames");
    println!("kernel_scheduled {scheduled}, upload: offload_forwarded {fwd}; rx_frames {rx}");
    // 5 MB is about 3,500 segments; uvs saw the flows' ends and the
    // upload's first segments.
    assert!(fwd >= 3_000, "offload_forwarded {fwd}");
    assert!(rx < 300, "uvs saw {rx} frames");
    for (i, n) in ["rs1", "rr1"].iter().enumerate() {
        let after = l.nstat(n);
        for k in ["TcpInCsumErrors", "UdpInCsumErrors"] {
            let d = after.get(k).copied().unwrap_or(0) - before[i].get(k).copied().unwrap_or(0);
            assert_eq!(d, 0, "{n}: {k} moved by {d}");
        }
    }
}
