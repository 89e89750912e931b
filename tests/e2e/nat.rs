//! End-to-end NAT (-m): a two-armed director (clients on eth0, untouched
//! real servers on eth1 whose default gateway it is), real TCP, UDP, bulk
//! and HTTP load through it, and ICMP errors translated back to the VIP.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count, finding};
use std::time::{Duration, Instant};

const NAT1: &str = "198.18.2.11";
const NAT2: &str = "198.18.2.12";
const DIRECTOR_NAT: &str = "198.18.2.1";

/// A real server on the NAT side: TCP 8080, UDP 5353 on every address (no
/// VIP there), HTTP 8000.
fn start_nat_server(l: &mut Lab, node: &str) {
    let ports = ["--tcp", "8080", "--udp", "0.0.0.0:5353", "--http", "8000"];
    l.start_server_on(node, &ports);
}

/// The lab with both NAT servers running and the director on both arms.
fn nat_lab() -> Option<Lab> {
    let mut l = Lab::up_with(2, &["--nat"])?;
    for n in ["nat1", "nat2"] {
        start_nat_server(&mut l, n);
    }
    l.start_director_on(&["eth0", "eth1"]);
    Some(l)
}

/// VIP:80 (TCP, wrr 3:1) and VIP:53 (UDP, rr) mapped to ports 8080 and
/// 5353 on the NAT servers.
fn nat_services(l: &Lab) {
    l.restore(&format!(
        "-A -t {VIP}:80 -s wrr\n-a -t {VIP}:80 -r {NAT1}:8080 -m -w 3\n\
         -a -t {VIP}:80 -r {NAT2}:8080 -m -w 1\n-A -u {VIP}:53 -s rr\n\
         -a -u {VIP}:53 -r {NAT1}:5353 -m\n-a -u {VIP}:53 -r {NAT2}:5353 -m\n"
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

#[test]
fn tcp_and_udp_with_port_mapping_and_the_client_address_kept() {
    let Some(l) = nat_lab() else { return };
    nat_services(&l);
    // The listing says Masq and the mapped ports, as ipvsadm does.
    let list = l.adm("-Ln");
    holds(&list, &format!("  -> {NAT1}:8080             Masq    3"));
    // The real server sees the client's own address and port, over TCP and
    // UDP: NAT is not a proxy.
    for udp in [false, true] {
        let port = if udp { 53 } else { 80 };
        let mut args = vec!["who", "--target"];
        let target = format!("{VIP}:{port}");
        args.push(&target);
        if udp {
            args.push("--udp");
        }
        let w = l.client(&args);
        assert_eq!(w["peer_seen"], w["local"], "{w}");
        assert!(
            w["local"].as_str().unwrap().starts_with("198.18.0.10:"),
            "{w}"
        );
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
    assert_eq!(c[&format!("{NAT1}:5353")] + c[&format!("{NAT2}:5353")], 21);
    let stats = l.adm("-Ln --stats");
    let svc = stats
        .lines()
        .find(|x| x.starts_with(&format!("TCP  {VIP}:80")))
        .unwrap();
    let f: Vec<u64> = svc
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(f[2] > 0, "OutPkts counted for NAT: {svc}");
    // Save and restore keep -m and the mapped ports, as ipvsadm's do.
    let saved = l.save_round_trip("-S -n");
    holds(&saved, &format!("-a -t {VIP}:80 -r {NAT1}:8080 -m -w 3"));
}

#[test]
fn five_megabytes_up_and_down_with_offloads_on() {
    let Some(l) = nat_lab() else { return };
    for node in ["cl", "nat1", "nat2"] {
        let k = l.exec(node, "ethtool", &["-k", "eth0"]);
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(k.contains("tcp-segmentation-offload: on"), "{node}: {k}");
        assert!(k.contains("tx-checksumming: on"), "{node}: {k}");
    }
    nat_services(&l);
    let target = format!("{VIP}:80");
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
    if l.dp_counter_settled("xdp_rx") == 0 {
        assert!(l.dp_counter("gso_segmented") + l.dp_counter("gso_passed") > 0);
    }
    assert!(l.dp_counter("csum_completed") > 0);
    assert_eq!(l.dp_counter("malformed"), 0);
    for node in ["cl", "nat1", "nat2"] {
        let n = l.nstat(node);
        assert_eq!(n.get("TcpInCsumErrors").copied().unwrap_or(0), 0, "{node}");
        assert_eq!(n.get("UdpInCsumErrors").copied().unwrap_or(0), 0, "{node}");
    }
}

#[test]
fn udp_to_a_closed_real_server_port_is_refused_in_the_vips_name() {
    let Some(l) = nat_lab() else { return };
    // Nothing listens on 5999 on the real server.
    l.adm(&format!("-A -u {VIP}:54 -s rr"));
    l.adm(&format!("-a -u {VIP}:54 -r {NAT1}:5999 -m"));
    let before = l.nstat("cl");
    let w = l.client(&["who", "--target", &format!("{VIP}:54"), "--udp"]);
    // The client's socket is connected to VIP:54: the kernel reports
    // "connection refused" only for an ICMP port unreachable whose quoted
    // datagram is exactly client -> VIP:54, sent from the VIP.
    let e = w["error"].as_str().unwrap_or("");
    assert!(e.contains("refused"), "{w}");
    let after = l.nstat("cl");
    let unreach = |n: &std::collections::HashMap<String, u64>| {
        n.get("IcmpInDestUnreachs").copied().unwrap_or(0)
    };
    assert!(unreach(&after) > unreach(&before));
    assert!(l.dp_counter("icmp_related") >= 1);
}

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

#[test]
fn http_load_from_wrk_splits_in_the_configured_ratio() {
    let Some(l) = nat_lab() else { return };
    l.adm(&format!("-A -t {VIP}:80 -s wrr"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT1}:8000 -m -w 3"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT2}:8000 -m -w 1"));
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
            &format!("http://{VIP}:80/"),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "wrk: {out}");
    let (requests, errors) = wrk_report(&out);
    assert_eq!(errors, 0, "{out}");
    assert!(requests >= 500, "{out}");
    let c = conns(&l);
    let (a, b) = (c[&format!("{NAT1}:8000")], c[&format!("{NAT2}:8000")]);
    // wrk counts only answered requests; connections cut at the deadline
    // were still scheduled (a couple per connection at most).
    assert!(a + b >= requests && a + b <= requests + 16, "{a} {b} {out}");
    let ratio = a as f64 / b as f64;
    assert!((2.9..=3.1).contains(&ratio), "{a}:{b}");
}

#[test]
fn dr_tun_and_nat_services_side_by_side() {
    let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
        return;
    };
    l.start_server("rs1");
    // rs2 is the TUN server: port 81 is its service.
    l.start_server_on("rs2", &["--tcp", "81"]);
    l.start_tunnel("rs2");
    start_nat_server(&mut l, "nat1");
    l.start_director_on(&["eth0", "eth1"]);
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {}:80 -g", RS1));
    l.adm(&format!("-A -t {VIP}:81 -s rr"));
    l.adm(&format!("-a -t {VIP}:81 -r {}:81 -i", RS2));
    l.adm(&format!("-A -t {VIP}:82 -s rr"));
    l.adm(&format!("-a -t {VIP}:82 -r {NAT1}:8080 -m"));
    let list = l.adm("-Ln");
    for f in ["Route", "Tunnel", "Masq"] {
        holds(&list, f);
    }
    for (port, server) in [(80, "rs1"), (81, "rs2"), (82, "nat1")] {
        let t = l.client(&[
            "tcp-names",
            "--target",
            &format!("{VIP}:{port}"),
            "--count",
            "10",
        ]);
        assert_eq!(count(&t, server), 10, "port {port}: {t}");
    }
    let u = l.upload(1_000_000);
    assert_eq!(
        (u["intact"].clone(), u["server"].clone()),
        (true.into(), "rs1".into())
    );
    let w = l.client(&["who", "--target", &format!("{VIP}:82")]);
    assert_eq!(w["peer_seen"], w["local"], "{w}");
    // DR and TUN replies bypass the director; only NAT's are counted.
    let stats = l.adm("-Ln --stats");
    let out_pkts = |port: u16| -> u64 {
        let line = stats
            .lines()
            .find(|x| x.starts_with(&format!("TCP  {VIP}:{port}")))
            .unwrap();
        line.split_whitespace().nth(4).unwrap().parse().unwrap()
    };
    assert_eq!((out_pkts(80), out_pkts(81)), (0, 0), "{stats}");
    assert!(out_pkts(82) > 0, "{stats}");
}

#[test]
fn a_real_server_routing_around_the_director_is_reported() {
    let Some(mut l) = nat_lab() else { return };
    // nat2 sends its replies elsewhere (a gateway that does not exist).
    l.sh("nat2", "ip route replace default via 198.18.2.254");
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT2}:8080 -m"));
    l.client_bg(
        &[
            "tcp-names",
            "--target",
            &format!("{VIP}:80"),
            "--count",
            "2",
        ],
        "bypass.json",
    );
    let t = Instant::now();
    let want = format!("warning: NAT real server {NAT2}:8080");
    while !l.log("director.log").contains(&want) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no warning: {}",
            l.log("director.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = l.log("director.log");
    holds(
        &log,
        &format!("ip route replace default via {DIRECTOR_NAT}"),
    );
    // The real server's own audit says the same, with the fix; nat1 is
    // set up right.
    let audit = |node: &str| {
        l.exec(
            node,
            env!("CARGO_BIN_EXE_uvs"),
            &[
                "audit",
                "--mode",
                "nat",
                "--director",
                DIRECTOR_NAT,
                "--json",
            ],
        )
    };
    let bad = audit("nat2");
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(bad.status.code(), Some(2), "{v}");
    let f = finding(&v, "default route");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(f.to_string().contains(DIRECTOR_NAT), "{f}");
    let good = audit("nat1");
    let v: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert!(good.status.code().unwrap() < 2, "{v}");
}

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

#[test]
fn a_smaller_mtu_on_the_server_side_is_learned_by_the_client() {
    let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
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
    l.adm(&format!("-A -u {VIP}:53 -s rr"));
    l.adm(&format!("-a -u {VIP}:53 -r {NAT1}:5353 -m"));
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT1}:8080 -m"));
    // A 1472-byte datagram with DF fits the client's link but not the
    // server side: "fragmentation needed" with 1400, from the VIP.
    let d = l.client(&["udp-df", "--target", &format!("{VIP}:53"), "--size", "1472"]);
    assert_eq!(d["path_mtu"], 1400, "{d}");
    assert!(l.dp_counter("frag_needed") >= 1);
    // TCP just works: the real server's MSS already fits its link, and the
    // client's super-frames are cut to fit the server side.
    let u = l.upload(2_000_000);
    assert_eq!(u["intact"], true, "{u}");
    let d = l.client(&[
        "download",
        "--target",
        &format!("{VIP}:80"),
        "--bytes",
        "2000000",
    ]);
    assert_eq!(d["intact"], true, "{d}");
}
