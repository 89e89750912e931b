//! End-to-end: direct routing over IPv6. Real TCP and UDP traffic from the
//! client (2001:2::10) to `[2001:2::100]` through `uvs director` to real
//! servers that hold the VIP on lo: the director answers the client's
//! neighbour solicitation for the VIP and resolves the real servers by
//! neighbour discovery. On every backend: AF_XDP's program steers the
//! frames to the VIP into its sockets; with `--offload` they come through
//! each link's IPv6 socket (docs/ipv6.md).

use crate::support::{CL6, Lab, RS1_6, RS2_6, VIP6, holds, tally2};
use std::time::Duration;

/// Two serving real servers, the director on the suite's backend, TCP 80
/// and UDP 53 on the IPv6 VIP, rr over both servers.
fn lab6() -> Option<Lab> {
    lab6_with(&[])
}

/// As `lab6`, the director started with `extra` arguments too.
fn lab6_with(extra: &[&str]) -> Option<Lab> {
    let mut l = Lab::up(2)?;
    let udp6 = format!("[{VIP6}]:53");
    for rs in ["rs1", "rs2"] {
        l.start_server_on(rs, &["--tcp", "80", "--udp", &udp6]);
    }
    let mut args = vec!["--interface", "eth0"];
    args.extend_from_slice(extra);
    l.start_director_with(&args);
    for (o, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-A {o} [{VIP6}]:{port} -s rr"));
        for rs in [RS1_6, RS2_6] {
            l.adm(&format!("-a {o} [{VIP6}]:{port} -r {rs} -g -w 1"));
        }
    }
    Some(l)
}

#[test]
fn tcp_and_udp_to_an_ipv6_vip_split_by_rr_and_an_upload_arrives_intact() {
    let Some(l) = lab6() else { return };
    split_and_upload(&l);
}

/// With `--offload` (the tc program on the AF_PACKET backends), IPv6
/// frames come to uvs through each link's IPv6 socket, as the tc program
/// leaves them alone.
#[test]
fn ipv6_is_served_with_offload_on() {
    let io = match std::env::var("UVS_IO").as_deref() {
        Ok("packet-ring") => "packet-ring",
        _ => "packet",
    };
    let Some(l) = lab6_with(&["--io", io, "--offload"]) else {
        return;
    };
    l.assert_log("director.log", "--offload: established DR flows");
    split_and_upload(&l);
}

/// The first test: 20 TCP connections and 20 UDP datagrams split
/// 10:10, a 5 MB upload intact, and the listings.
fn split_and_upload(l: &Lab) {
    let tcp = format!("[{VIP6}]:80");
    let t = l.client(&["tcp-names", "--target", &tcp, "--count", "20"]);
    assert_eq!(tally2(&t, "rs1", "rs2"), (10, 10, Some(0)), "{t}");
    let udp = format!("[{VIP6}]:53");
    let args = [
        "udp-names",
        "--target",
        &udp,
        "--count",
        "20",
        "--sport-base",
        "23000",
    ];
    let u = l.client(&args);
    assert_eq!(tally2(&u, "rs1", "rs2"), (10, 10, Some(0)), "{u}");
    // The client's offloads stay on: TSO super-frames of TCP/IPv6.
    let up = l.client(&["upload", "--target", &tcp, "--bytes", "5000000"]);
    assert_eq!(up["intact"], true, "{up}");
    assert_eq!(up["received"].as_u64(), Some(5_000_000), "{up}");
    // Listed as ipvsadm lists an IPv6 service.
    let ln = l.adm("-Ln");
    holds(&ln, &format!("TCP  [{VIP6}]:80 rr\n"));
    let rs1 = format!("[{RS1_6}]:80");
    holds(&ln, &format!("  -> {rs1:<28} Route   1      "));
    let st = l.adm("-Ln --stats --exact");
    let line = st.lines().find(|x| x.starts_with("TCP")).unwrap();
    assert_eq!(line.split_whitespace().nth(2), Some("21"), "{st}");
    // The UDP flows' entries, listed as ipvsadm lists IPv6 connections.
    let c = l.adm("-Lnc");
    let vip53 = format!("[{VIP6}]:53");
    let rows: Vec<&str> = c.lines().filter(|r| r.contains(&vip53)).collect();
    assert_eq!(rows.len(), 20, "{c}");
    let to_rs1 = format!("[{RS1_6}]:53");
    assert_eq!(
        rows.iter().filter(|r| r.ends_with(&to_rs1)).count(),
        10,
        "{c}"
    );
    assert!(rows.iter().all(|r| r.starts_with("UDP ")), "{c}");
    let s = l.adm("-S -n");
    holds(&s, &format!("-A -t [{VIP6}]:80 -s rr\n"));
    holds(&s, &format!("-a -t [{VIP6}]:80 -r [{RS2_6}]:80 -g -w 1\n"));
}

/// The hostile IPv6 frames as a flood through the lab, while a
/// TCP connection to the IPv6 VIP carries requests: extension-header
/// chains too long, truncated or out of order, payload lengths that lie,
/// cut TCP and UDP, fragments, ICMPv6 errors quoting garbage, neighbour
/// discovery with bad options, random bytes. The director neither stops
/// nor loses the connection, counts what it dropped, and takes new
/// connections afterwards.
#[test]
fn a_flood_of_hostile_ipv6_frames_leaves_live_connections_alone() {
    let Some(mut l) = lab6() else { return };
    let tcp = format!("[{VIP6}]:80");
    let stick = [
        "tcp-stick",
        "--target",
        &tcp,
        "--messages",
        "40",
        "--interval-ms",
        "100",
    ];
    l.client_bg(&stick, "stick6.json");
    std::thread::sleep(Duration::from_millis(300));
    let (ext0, frag0, bad0) = (
        l.dp_counter("ext_headers_dropped"),
        l.dp_counter("fragments_dropped"),
        l.dp_counter("malformed"),
    );
    let mac = l.mac("dir");
    let rounds = 1500u64;
    let f = l.client(&[
        "hostile6",
        "--dst-mac",
        &mac,
        "--src",
        CL6,
        "--dst",
        VIP6,
        "--rounds",
        "1500",
    ]);
    let kinds = f["kinds"].as_array().map_or(0, Vec::len) as u64;
    assert!(kinds >= 25, "{f}");
    assert_eq!(f["sent"].as_u64(), Some(rounds * kinds), "{f}");
    // The long-lived connection had every request answered, by one server.
    let s = l.wait_child_logs("stick6.json", Duration::from_secs(30));
    assert!(s["error"].is_null(), "{s}");
    let counts = s["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 1, "{s}");
    assert_eq!(counts.values().next().unwrap().as_u64(), Some(40), "{s}");
    // Refused chains (too long, truncated, Hop-by-Hop late, two fragment
    // headers: four a round at least) and fragments (two a round) were
    // counted; the cut headers as malformed.
    let ext = l.dp_counter_settled("ext_headers_dropped") - ext0;
    assert!(ext >= 4 * rounds, "ext_headers_dropped rose by {ext}");
    let frag = l.dp_counter("fragments_dropped") - frag0;
    assert!(frag >= 2 * rounds, "fragments_dropped rose by {frag}");
    let bad = l.dp_counter("malformed") - bad0;
    println!(
        "{kinds} kinds x {rounds}: ext_headers_dropped +{ext}, fragments_dropped +{frag}, malformed +{bad}"
    );
    assert!(bad >= 3 * rounds, "malformed rose by {bad}");
    // New connections are scheduled as before.
    let t = l.client(&["tcp-names", "--target", &tcp, "--count", "10"]);
    assert_eq!(tally2(&t, "rs1", "rs2"), (5, 5, Some(0)), "{t}");
}
