//! End-to-end NAT66 (-m to IPv6 real servers) on the two-armed lab:
//! clients on eth0 (2001:2::/64), untouched real servers on eth1
//! (2001:2:0:2::/64, default via the director), real TCP and UDP to
//! `[VIP6]`, a bulk upload, and packet too big both ways: the director's
//! own when the server side's MTU is smaller, and a router's on the way
//! back to a client, translated to the real server. On every backend.

use crate::support::{CL6, Lab, VIP6, holds, lab_tool, tally2};

const NAT1: &str = "2001:2:0:2::11";
const NAT2: &str = "2001:2:0:2::12";
/// The client behind the lab's router (`--routed`).
const FAR6: &str = "2001:2:0:1::11";

/// The director on both arms, on the suite's backend.
fn start_director(l: &mut Lab) {
    l.start_director_on(&["eth0", "eth1"]);
}

/// TCP 8080 and UDP 5353 on every address, on both NAT servers.
fn start_nat_servers(l: &mut Lab) {
    for n in ["nat1", "nat2"] {
        l.start_server_on(n, &["--tcp", "8080", "--udp", "[::]:5353"]);
    }
}

/// `[VIP6]:80` and `[VIP6]:53`, rr over both NAT servers' 8080 and 5353.
fn nat6_services(l: &Lab) {
    l.restore(&format!(
        "-A -t [{VIP6}]:80 -s rr\n-a -t [{VIP6}]:80 -r [{NAT1}]:8080 -m\n\
         -a -t [{VIP6}]:80 -r [{NAT2}]:8080 -m\n-A -u [{VIP6}]:53 -s rr\n\
         -a -u [{VIP6}]:53 -r [{NAT1}]:5353 -m\n-a -u [{VIP6}]:53 -r [{NAT2}]:5353 -m\n"
    ));
}

/// A `uvs-lab` client mode in another node than the client's; its JSON.
fn client_on(l: &Lab, node: &str, args: &[&str]) -> serde_json::Value {
    let o = l.exec(node, &lab_tool(), args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("client JSON")
}

#[test]
fn tcp_and_udp_to_an_ipv6_vip_split_by_rr_over_nat_servers_and_an_upload_arrives_intact() {
    let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
        return;
    };
    start_nat_servers(&mut l);
    start_director(&mut l);
    nat6_services(&l);
    let rs = format!("[{NAT1}]:8080");
    holds(&l.adm("-Ln"), &format!("  -> {rs:<28} Masq    1      "));
    let tcp = format!("[{VIP6}]:80");
    let udp = format!("[{VIP6}]:53");
    // The real servers see the client's own address and port.
    for (target, udp) in [(&tcp, false), (&udp, true)] {
        let mut args = vec!["who", "--target", target.as_str()];
        if udp {
            args.push("--udp");
        }
        let w = l.client(&args);
        assert_eq!(w["peer_seen"], w["local"], "{w}");
        let local = w["local"].as_str().unwrap();
        assert!(local.starts_with(&format!("[{CL6}]:")), "{w}");
    }
    let t = l.client(&["tcp-names", "--target", &tcp, "--count", "20"]);
    assert_eq!(tally2(&t, "nat1", "nat2"), (10, 10, Some(0)), "{t}");
    let u = l.client(&[
        "udp-names",
        "--target",
        &udp,
        "--count",
        "20",
        "--sport-base",
        "23000",
    ]);
    assert_eq!(tally2(&u, "nat1", "nat2"), (10, 10, Some(0)), "{u}");
    // The client's offloads stay on: TSO super-frames of TCP/IPv6, whose
    // partial checksums NAT66 patches.
    let up = l.client(&["upload", "--target", &tcp, "--bytes", "5000000"]);
    assert_eq!(up["intact"], true, "{up}");
    assert_eq!(up["received"].as_u64(), Some(5_000_000), "{up}");
    let down = l.client(&["download", "--target", &tcp, "--bytes", "3000000"]);
    assert_eq!(down["intact"], true, "{down}");
    // The replies came through uvs, translated.
    assert!(l.dp_counter("nat_replies") >= 100);
    assert_eq!(l.dp_counter("malformed"), 0);
    for node in ["cl", "nat1", "nat2"] {
        let n = l.nstat(node);
        assert_eq!(n.get("TcpInCsumErrors").copied().unwrap_or(0), 0, "{node}");
        assert_eq!(n.get("Udp6InCsumErrors").copied().unwrap_or(0), 0, "{node}");
    }
    let c = l.adm("-Lnc");
    let rows = c.lines().filter(|r| r.contains(&format!("[{VIP6}]:53")));
    assert_eq!(rows.count(), 21, "{c}");
    let s = l.adm("-S -n");
    holds(&s, &format!("-a -t [{VIP6}]:80 -r [{NAT2}]:8080 -m -w 1\n"));
}

#[test]
fn a_smaller_mtu_on_the_server_side_is_learned_by_the_client() {
    let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
    l.sh("dir", "ip link set eth1 mtu 1400");
    l.sh(
        "sw",
        "ip link set p-dir1 mtu 1400; ip link set p-nat1 mtu 1400",
    );
    l.sh("nat1", "ip link set eth0 mtu 1400");
    l.start_server_on("nat1", &["--tcp", "8080", "--udp", "[::]:5353"]);
    start_director(&mut l);
    l.restore(&format!(
        "-A -u [{VIP6}]:53 -s rr\n-a -u [{VIP6}]:53 -r [{NAT1}]:5353 -m\n\
         -A -t [{VIP6}]:80 -s rr\n-a -t [{VIP6}]:80 -r [{NAT1}]:8080 -m\n"
    ));
    // 1452 bytes of UDP make a 1500-byte packet: it fits the client's
    // link, not the server side. Packet too big with 1400, from the VIP.
    let target = format!("[{VIP6}]:53");
    let d = l.client(&["udp-df", "--target", &target, "--size", "1452"]);
    assert_eq!(d["path_mtu"], 1400, "{d}");
    assert!(l.dp_counter("frag_needed") >= 1);
    let n = l.nstat("cl");
    assert!(
        n.get("Icmp6InPktTooBigs").copied().unwrap_or(0) >= 1,
        "{n:?}"
    );
    // TCP just works: the server's MSS fits its link and the client's
    // super-frames are cut to fit the server side.
    let tcp = format!("[{VIP6}]:80");
    let up = l.client(&["upload", "--target", &tcp, "--bytes", "2000000"]);
    assert_eq!(up["intact"], true, "{up}");
}

#[test]
fn a_routers_packet_too_big_on_the_way_back_reaches_the_real_server_translated() {
    let Some(mut l) = Lab::up_with(1, &["--nat", "--routed"]) else {
        return;
    };
    // The client behind the router; the router's link to it runs at
    // 1400, the rest at 1500, the client's own end too: its SYN offers an
    // MSS of 1440, so the real server's segments must learn the path.
    // It is no real server here: the VIP leaves its lo.
    l.sh("rr1", &format!("ip -6 addr del {VIP6}/128 dev lo"));
    l.sh("rt", "ip link set eth1 mtu 1400");
    l.start_server_on("nat1", &["--tcp", "8080"]);
    start_director(&mut l);
    l.restore(&format!(
        "-A -t [{VIP6}]:80 -s rr\n-a -t [{VIP6}]:80 -r [{NAT1}]:8080 -m\n"
    ));
    // The real server's 1500-byte segments (from the VIP once
    // translated) do not fit the router's last link: its packet too
    // big, sent to the VIP, must reach the real server about its own
    // segment (RIP:8080) or the download stalls.
    let tcp = format!("[{VIP6}]:80");
    let down = client_on(
        &l,
        "rr1",
        &["download", "--target", &tcp, "--bytes", "3000000"],
    );
    assert_eq!(down["intact"], true, "{down}");
    assert!(l.dp_counter("icmp_related") >= 1);
    let n = l.nstat("nat1");
    assert!(
        n.get("Icmp6InPktTooBigs").copied().unwrap_or(0) >= 1,
        "{n:?}"
    );
    let w = client_on(&l, "rr1", &["who", "--target", &tcp]);
    assert_eq!(w["peer_seen"], w["local"], "{w}");
    assert!(
        w["local"]
            .as_str()
            .unwrap()
            .starts_with(&format!("[{FAR6}]")),
        "{w}"
    );
}
