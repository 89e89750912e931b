//! End-to-end NAT (-m): a two-armed director (clients on eth0, untouched
//! real servers on eth1 whose default gateway it is), real TCP, UDP, bulk
//! and HTTP load through it, and ICMP errors translated back to the VIP;
//! each case over IPv4 and over IPv6 (NAT66) where it applies.

use crate::both_families;
use crate::support::holds;
use crate::support::{CL6, Fam, Lab, VIP, count, finding};
use std::time::{Duration, Instant};

/// NAT real server `i` (1 or 2) behind the director's eth1.
fn nat(fam: Fam, i: usize) -> &'static str {
    match (fam, i) {
        (Fam::V4, 1) => "198.18.2.11",
        (Fam::V4, _) => "198.18.2.12",
        (Fam::V6, 1) => "2001:2:0:2::11",
        (Fam::V6, _) => "2001:2:0:2::12",
    }
}

/// The director's address on the NAT side.
fn director_nat(fam: Fam) -> &'static str {
    match fam {
        Fam::V4 => "198.18.2.1",
        Fam::V6 => "2001:2:0:2::1",
    }
}

/// A real server on the NAT side: TCP 8080, UDP 5353 on every address of
/// the family (no VIP there), HTTP 8000.
fn start_nat_server(l: &mut Lab, node: &str) {
    let any = match l.fam {
        Fam::V4 => "0.0.0.0:5353",
        Fam::V6 => "[::]:5353",
    };
    let ports = ["--tcp", "8080", "--udp", any, "--http", "8000"];
    l.start_server_on(node, &ports);
}

/// The lab with both NAT servers running and the director on both arms;
/// clients and services of family `fam`.
fn nat_lab(fam: Fam) -> Option<Lab> {
    let mut l = Lab::up_with(2, &["--nat"])?;
    l.fam = fam;
    for n in ["nat1", "nat2"] {
        start_nat_server(&mut l, n);
    }
    l.start_director_on(&["eth0", "eth1"]);
    Some(l)
}

/// VIP:80 (TCP, wrr 3:1) and VIP:53 (UDP, rr) mapped to ports 8080 and
/// 5353 on the NAT servers.
fn nat_services(l: &Lab) {
    let f = l.fam;
    let (v80, v53) = (f.vip_at(80), f.vip_at(53));
    let (n1, n2) = (f.at(nat(f, 1), 8080), f.at(nat(f, 2), 8080));
    let (u1, u2) = (f.at(nat(f, 1), 5353), f.at(nat(f, 2), 5353));
    l.restore(&format!(
        "-A -t {v80} -s wrr\n-a -t {v80} -r {n1} -m -w 3\n-a -t {v80} -r {n2} -m -w 1\n\
         -A -u {v53} -s rr\n-a -u {v53} -r {u1} -m\n-a -u {v53} -r {u2} -m\n"
    ));
}

/// Conns per real server from `uvsadm -Ln --stats`, keyed "ADDR:PORT".
fn conns(l: &Lab) -> std::collections::HashMap<String, u64> {
    l.adm("-Ln --stats")
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("-> ")?;
            let mut f = rest.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

both_families!(
    tcp_and_udp_with_port_mapping_and_the_client_address_kept,
    |fam: Fam| {
        let Some(l) = nat_lab(fam) else { return };
        nat_services(&l);
        let (n1, n2) = (nat(fam, 1), nat(fam, 2));
        // The listing says Masq and the mapped ports, as ipvsadm does.
        let list = l.adm("-Ln");
        holds(&list, &format!("  -> {:<28} Masq    3", fam.at(n1, 8080)));
        // The real server sees the client's own address and port, over TCP and
        // UDP: NAT is not a proxy.
        for udp in [false, true] {
            let port = if udp { 53 } else { 80 };
            let mut args = vec!["who", "--target"];
            let target = fam.vip_at(port);
            args.push(&target);
            if udp {
                args.push("--udp");
            }
            let w = l.client(&args);
            assert_eq!(w["peer_seen"], w["local"], "{w}");
            let client = match fam {
                Fam::V4 => fam.before_port("198.18.0.10"),
                Fam::V6 => fam.before_port(CL6),
            };
            assert!(w["local"].as_str().unwrap().starts_with(&client), "{w}");
        }
        // wrr 3:1 over 40 connections (the WHO above was the first pick).
        let t = l.tcp_names(40);
        assert_eq!(t["errors"], 0, "{t}");
        assert_eq!(count(&t, "nat1") + count(&t, "nat2"), 40, "{t}");
        let ratio = count(&t, "nat1") as f64 / count(&t, "nat2") as f64;
        assert!((2.5..=3.6).contains(&ratio), "{t}");
        // rr over UDP, each datagram from its own port (its own connection).
        let u = l.udp_names(20, 31000);
        assert_eq!((count(&u, "nat1"), count(&u, "nat2")), (10, 10), "{u}");
        // Replies were translated by uvs (OutPkts counted), not bypassing it.
        assert!(l.dp_counter("nat_replies") >= 100);
        let c = conns(&l);
        assert_eq!(c[&fam.at(n1, 5353)] + c[&fam.at(n2, 5353)], 21);
        let stats = l.adm("-Ln --stats");
        let svc = stats
            .lines()
            .find(|x| x.starts_with(&format!("TCP  {}", fam.vip_at(80))))
            .unwrap();
        let f: Vec<u64> = svc
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(f[2] > 0, "OutPkts counted for NAT: {svc}");
        // Save and restore keep -m and the mapped ports, as ipvsadm's do.
        let saved = l.save_round_trip("-S -n");
        let rule = format!("-a -t {} -r {} -m -w 3", fam.vip_at(80), fam.at(n1, 8080));
        holds(&saved, &rule);
    }
);

both_families!(five_megabytes_up_and_down_with_offloads_on, |fam: Fam| {
    let Some(l) = nat_lab(fam) else { return };
    for node in ["cl", "nat1", "nat2"] {
        let k = l.exec(node, "ethtool", &["-k", "eth0"]);
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(k.contains("tcp-segmentation-offload: on"), "{node}: {k}");
        assert!(k.contains("tx-checksumming: on"), "{node}: {k}");
    }
    nat_services(&l);
    let target = fam.vip_at(80);
    for _ in 0..2 {
        let u = l.upload(5_000_000);
        assert_eq!(u["intact"], true, "{u}");
        let d = l.client(&["download", "--target", &target, "--bytes", "5000000"]);
        assert_eq!(d["intact"], true, "{d}");
        assert_eq!(d["received"], 5_000_000, "{d}");
    }
    // Both directions came as offload super-frames or with unfinished
    // checksums, and uvs finished them. (With XDP attached a veth's peer
    // segments before sending, so super-frames come only to AF_PACKET.)
    if !l.log("director.log").contains("packet I/O: AF_XDP") {
        assert!(l.dp_counter("gso_segmented") + l.dp_counter("gso_passed") > 0);
    }
    assert!(l.dp_counter("csum_completed") > 0);
    assert_eq!(l.dp_counter("malformed"), 0);
    let udp = match fam {
        Fam::V4 => "UdpInCsumErrors",
        Fam::V6 => "Udp6InCsumErrors",
    };
    for node in ["cl", "nat1", "nat2"] {
        let n = l.nstat(node);
        assert_eq!(n.get("TcpInCsumErrors").copied().unwrap_or(0), 0, "{node}");
        assert_eq!(n.get(udp).copied().unwrap_or(0), 0, "{node}");
    }
});

both_families!(
    udp_to_a_closed_real_server_port_is_refused_in_the_vips_name,
    |fam: Fam| {
        let Some(l) = nat_lab(fam) else { return };
        // Nothing listens on 5999 on the real server.
        l.adm(&format!("-A -u {} -s rr", fam.vip_at(54)));
        l.adm(&format!(
            "-a -u {} -r {} -m",
            fam.vip_at(54),
            fam.at(nat(fam, 1), 5999)
        ));
        let before = l.nstat("cl");
        let w = l.client(&["who", "--target", &fam.vip_at(54), "--udp"]);
        // The client's socket is connected to VIP:54: the kernel reports
        // "connection refused" only for an ICMP port unreachable whose quoted
        // datagram is exactly client -> VIP:54, sent from the VIP.
        let e = w["error"].as_str().unwrap_or("");
        assert!(e.contains("refused"), "{w}");
        let after = l.nstat("cl");
        let k = match fam {
            Fam::V4 => "IcmpInDestUnreachs",
            Fam::V6 => "Icmp6InDestUnreachs",
        };
        let unreach = |n: &std::collections::HashMap<String, u64>| n.get(k).copied().unwrap_or(0);
        assert!(unreach(&after) > unreach(&before));
        assert!(l.dp_counter("icmp_related") >= 1);
    }
);

/// wrk's request and error counts from its report.
fn wrk_report(out: &str) -> (u64, u64) {
    let requests = out
        .lines()
        .find_map(|x| x.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk output: {out}"));
    let mut errors = 0;
    for line in out.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(1);
        }
    }
    (requests, errors)
}

both_families!(
    http_load_from_wrk_splits_in_the_configured_ratio,
    |fam: Fam| {
        let Some(l) = nat_lab(fam) else { return };
        let (v80, n1, n2) = (
            fam.vip_at(80),
            fam.at(nat(fam, 1), 8000),
            fam.at(nat(fam, 2), 8000),
        );
        l.adm(&format!("-A -t {v80} -s wrr"));
        l.adm(&format!("-a -t {v80} -r {n1} -m -w 3"));
        l.adm(&format!("-a -t {v80} -r {n2} -m -w 1"));
        // One connection per request, so the scheduler sees every request.
        let o = l.exec(
            "cl",
            "wrk",
            &[
                "-t2",
                "-c8",
                "-d3s",
                "-H",
                "Connection: close",
                &format!("http://{v80}/"),
            ],
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "wrk: {out}");
        let (requests, errors) = wrk_report(&out);
        assert_eq!(errors, 0, "{out}");
        assert!(requests >= 500, "{out}");
        let c = conns(&l);
        let (a, b) = (c[&n1], c[&n2]);
        // wrk counts only answered requests; connections cut at the deadline
        // were still scheduled (a couple per connection at most).
        assert!(a + b >= requests && a + b <= requests + 16, "{a} {b} {out}");
        let ratio = a as f64 / b as f64;
        assert!((2.9..=3.1).contains(&ratio), "{a}:{b}");
    }
);

both_families!(dr_tun_and_nat_services_side_by_side, |fam: Fam| {
    let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
        return;
    };
    l.fam = fam;
    l.start_server("rs1");
    // rs2 is the TUN server: port 81 is its service (IPv6-in-IPv6 needs
    // uvs decap: the kernel's tunnel device here takes IPv4 only).
    l.start_server_on("rs2", &["--tcp", "81"]);
    match fam {
        Fam::V4 => l.start_tunnel("rs2"),
        Fam::V6 => l.start_decap("rs2"),
    }
    start_nat_server(&mut l, "nat1");
    l.start_director_on(&["eth0", "eth1"]);
    let v = |port| fam.vip_at(port);
    l.adm(&format!("-A -t {} -s rr", v(80)));
    l.adm(&format!("-a -t {} -r {} -g", v(80), fam.rs(1)));
    l.adm(&format!("-A -t {} -s rr", v(81)));
    l.adm(&format!("-a -t {} -r {} -i", v(81), fam.rs(2)));
    l.adm(&format!("-A -t {} -s rr", v(82)));
    l.adm(&format!(
        "-a -t {} -r {} -m",
        v(82),
        fam.at(nat(fam, 1), 8080)
    ));
    let list = l.adm("-Ln");
    for f in ["Route", "Tunnel", "Masq"] {
        holds(&list, f);
    }
    for (port, server) in [(80, "rs1"), (81, "rs2"), (82, "nat1")] {
        let t = l.client(&["tcp-names", "--target", &v(port), "--count", "10"]);
        assert_eq!(count(&t, server), 10, "port {port}: {t}");
    }
    let u = l.upload(1_000_000);
    assert_eq!(
        (u["intact"].clone(), u["server"].clone()),
        (true.into(), "rs1".into())
    );
    let w = l.client(&["who", "--target", &v(82)]);
    assert_eq!(w["peer_seen"], w["local"], "{w}");
    // DR and TUN replies bypass the director; only NAT's are counted.
    let stats = l.adm("-Ln --stats");
    let out_pkts = |port: u16| -> u64 {
        let line = stats
            .lines()
            .find(|x| x.starts_with(&format!("TCP  {}", v(port))))
            .unwrap();
        line.split_whitespace().nth(4).unwrap().parse().unwrap()
    };
    assert_eq!((out_pkts(80), out_pkts(81)), (0, 0), "{stats}");
    assert!(out_pkts(82) > 0, "{stats}");
});

both_families!(
    a_real_server_routing_around_the_director_is_reported,
    |fam: Fam| {
        let Some(mut l) = nat_lab(fam) else { return };
        // nat2 sends its replies elsewhere (a gateway that does not exist).
        let (ip, gw) = match fam {
            Fam::V4 => ("ip", "198.18.2.254"),
            Fam::V6 => ("ip -6", "2001:2:0:2::fe"),
        };
        l.sh("nat2", &format!("{ip} route replace default via {gw}"));
        let n2 = fam.at(nat(fam, 2), 8080);
        l.adm(&format!("-A -t {} -s rr", fam.vip_at(80)));
        l.adm(&format!("-a -t {} -r {n2} -m", fam.vip_at(80)));
        l.client_bg(
            &["tcp-names", "--target", &fam.vip_at(80), "--count", "2"],
            "bypass.json",
        );
        let t = Instant::now();
        let want = format!("warning: NAT real server {n2}");
        while !l.log("director.log").contains(&want) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no warning: {}",
                l.log("director.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = l.log("director.log");
        let dn = director_nat(fam);
        holds(&log, &format!("{ip} route replace default via {dn}"));
        if fam == Fam::V6 {
            return;
        }
        // The real server's own audit says the same, with the fix; nat1 is
        // set up right.
        let audit = |node: &str| {
            l.exec(
                node,
                env!("CARGO_BIN_EXE_uvs"),
                &["audit", "--mode", "nat", "--director", dn, "--json"],
            )
        };
        let bad = audit("nat2");
        let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
        assert_eq!(bad.status.code(), Some(2), "{v}");
        let f = finding(&v, "default route");
        assert_eq!(f["status"], "fail", "{f}");
        assert!(f.to_string().contains(dn), "{f}");
        let good = audit("nat1");
        let v: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
        assert!(good.status.code().unwrap() < 2, "{v}");
    }
);

#[test]
fn the_director_refuses_to_start_when_its_kernel_would_forward() {
    let Some(l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
    l.sh("dir", "sysctl -qw net.ipv4.conf.eth1.forwarding=1");
    let o = l.director_once(&["-i", "eth0", "-i", "eth1"], &l.dir.join("refused.sock"));
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    holds(&e, "forwarding is on for eth1");
    holds(&e, "net.ipv4.conf.eth1.forwarding=0");
}

both_families!(
    a_smaller_mtu_on_the_server_side_is_learned_by_the_client,
    |fam: Fam| {
        let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
            return;
        };
        l.fam = fam;
        // The server network runs at 1400: the director's eth1, the switch
        // ports and the real server.
        l.sh("dir", "ip link set eth1 mtu 1400");
        l.sh(
            "sw",
            "ip link set p-dir1 mtu 1400; ip link set p-nat1 mtu 1400",
        );
        l.sh("nat1", "ip link set eth0 mtu 1400");
        start_nat_server(&mut l, "nat1");
        l.start_director_on(&["eth0", "eth1"]);
        let (n1, v53, v80) = (nat(fam, 1), fam.vip_at(53), fam.vip_at(80));
        l.adm(&format!("-A -u {v53} -s rr"));
        l.adm(&format!("-a -u {v53} -r {} -m", fam.at(n1, 5353)));
        l.adm(&format!("-A -t {v80} -s rr"));
        l.adm(&format!("-a -t {v80} -r {} -m", fam.at(n1, 8080)));
        // The largest datagram the client's link takes (1472 bytes of UDP,
        // 1452 over IPv6) does not fit the server side: "fragmentation
        // needed" (packet too big) with 1400, from the VIP.
        let (size, learned) = match fam {
            Fam::V4 => ("1472", "IcmpInDestUnreachs"),
            Fam::V6 => ("1452", "Icmp6InPktTooBigs"),
        };
        let d = l.client(&["udp-df", "--target", &v53, "--size", size]);
        assert_eq!(d["path_mtu"], 1400, "{d}");
        assert!(l.dp_counter("frag_needed") >= 1);
        let n = l.nstat("cl");
        assert!(n.get(learned).copied().unwrap_or(0) >= 1, "{n:?}");
        // TCP just works: the real server's MSS already fits its link, and the
        // client's super-frames are cut to fit the server side.
        let u = l.upload(2_000_000);
        assert_eq!(u["intact"], true, "{u}");
        let d = l.client(&["download", "--target", &v80, "--bytes", "2000000"]);
        assert_eq!(d["intact"], true, "{d}");
    }
);

/// A `uvs-lab` client mode in another node than the client's; its JSON.
fn client_on(l: &Lab, node: &str, args: &[&str]) -> serde_json::Value {
    let o = l.exec(node, &crate::support::lab_tool(), args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("client JSON")
}

both_families!(
    /// A client behind the lab's router, whose link to it runs at 1400
    /// (the rest at 1500, the client's own end too: its SYN offers an
    /// MSS of 1460 or 1440, so the real server's segments must learn the
    /// path). The router's "fragmentation needed" (packet too big), sent
    /// to the VIP, must reach the real server about its own segment
    /// (RIP:8080), translated, or the download stalls.
    a_routers_packet_too_big_on_the_way_back_reaches_the_real_server_translated,
    |fam: Fam| {
        let Some(mut l) = Lab::up_with(1, &["--nat", "--routed"]) else {
            return;
        };
        l.fam = fam;
        // rr1 is the client here, not a real server: the VIP leaves its lo.
        let (far, del, learned) = match fam {
            Fam::V4 => ("198.18.1.11", format!("ip addr del {VIP}/32 dev lo"), "IcmpInDestUnreachs"),
            Fam::V6 => (
                "2001:2:0:1::11",
                format!("ip -6 addr del {}/128 dev lo", fam.vip()),
                "Icmp6InPktTooBigs",
            ),
        };
        l.sh("rr1", &del);
        l.sh("rt", "ip link set eth1 mtu 1400");
        l.start_server_on("nat1", &["--tcp", "8080"]);
        l.start_director_on(&["eth0", "eth1"]);
        let v80 = fam.vip_at(80);
        l.adm(&format!("-A -t {v80} -s rr"));
        l.adm(&format!("-a -t {v80} -r {} -m", fam.at(nat(fam, 1), 8080)));
        let down = client_on(&l, "rr1", &["download", "--target", &v80, "--bytes", "3000000"]);
        assert_eq!(down["intact"], true, "{down}");
        assert!(l.dp_counter("icmp_related") >= 1);
        let n = l.nstat("nat1");
        assert!(n.get(learned).copied().unwrap_or(0) >= 1, "{n:?}");
        let w = client_on(&l, "rr1", &["who", "--target", &v80]);
        assert_eq!(w["peer_seen"], w["local"], "{w}");
        let local = w["local"].as_str().unwrap();
        // Its own address, as the client's end writes it.
        assert!(local.starts_with(&fam.before_port(far)), "{w}");
    }
);
