//! End-to-end: direct routing over IPv6. Real TCP and UDP traffic from the
//! client (2001:2::10) to `[2001:2::100]` through `uvs director` to real
//! servers that hold the VIP on lo: the director answers the client's
//! neighbour solicitation for the VIP and resolves the real servers by
//! neighbour discovery. On the packet backends: the AF_XDP program does
//! not steer IPv6 frames yet (docs/ipv6.md).

use crate::support::{Lab, RS1_6, RS2_6, VIP6, holds, io6, tally2};

/// Two serving real servers, the director on a packet backend, TCP 80
/// and UDP 53 on the IPv6 VIP, rr over both servers.
fn lab6() -> Option<Lab> {
    let mut l = Lab::up(2)?;
    let udp6 = format!("[{VIP6}]:53");
    for rs in ["rs1", "rs2"] {
        l.start_server_on(rs, &["--tcp", "80", "--udp", &udp6]);
    }
    let mut args = vec!["--interface", "eth0"];
    args.extend(io6());
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
