//! End-to-end TUN over IPv6: the director wraps a client's IPv6 packet in
//! an outer IPv6 header from its own address (IPv6-in-IPv6) and the real
//! servers unwrap it with `uvs decap` (this kernel has no ip6tnl). Behind
//! the cloud-VPC switch (lab.sh --vpc), whose port security admits only
//! each port's own (MAC, IPv6) pairs: DR over IPv6 dies there, TUN
//! passes, and a datagram too big once wrapped teaches the client the
//! tunnel's MTU. And the mix IPVS allows for tunnels: an IPv4 VIP served by an
//! IPv6 real server (IPv4-in-IPv6), the model refusing DR to it. On every
//! backend.

use crate::support::{Lab, RS1_6, RS2_6, VIP, VIP6, holds, tally, tally2};
use crate::tun::{learns_the_tunnel_mtu, one_server_lab};

#[test]
fn tun6_passes_the_vpc_switch_where_dr6_dies_split_by_rr_with_an_intact_upload() {
    let Some(mut l) = Lab::up_with(2, &["--vpc"]) else {
        return;
    };
    let udp6 = format!("[{VIP6}]:53");
    for rs in ["rs1", "rs2"] {
        l.start_server_on(rs, &["--tcp", "80", "--udp", &udp6]);
        l.start_decap(rs);
    }
    // No --tun-source6: the director takes eth0's 2001:2::2.
    l.start_director();
    for (o, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-A {o} [{VIP6}]:{port} -s rr"));
        for rs in [RS1_6, RS2_6] {
            l.adm(&format!("-a {o} [{VIP6}]:{port} -r {rs} -g -w 1"));
        }
    }
    let tcp = format!("[{VIP6}]:80");
    let names = |count: u32, sport_base: u16| {
        let (c, b) = (count.to_string(), sport_base.to_string());
        let t = l.client(&["tcp-names", "--target", &tcp, "--count", &c]);
        let u = l.client(&[
            "udp-names",
            "--target",
            &udp6,
            "--count",
            &c,
            "--sport-base",
            &b,
        ]);
        (t, u)
    };
    let d0 = l.switch_drops();
    // DR: the director forwards the client's frames, the switch drops
    // them (a client's source address from the director's MAC).
    let (t, u) = names(2, 24000);
    assert_eq!(tally2(&t, "rs1", "rs2"), (0, 0, Some(2)), "{t}");
    assert_eq!(tally2(&u, "rs1", "rs2"), (0, 0, Some(2)), "{u}");
    let d1 = l.switch_drops();
    assert!(d1 >= d0 + 4, "switch drop counter {d0} -> {d1}");
    assert!(l.dp_counter("forwarded") >= 4, "the director did forward");

    // The same real servers by TUN: everything answers, 10:10 by rr,
    // and nothing more is dropped.
    for (o, port) in [("-t", 80), ("-u", 53)] {
        for rs in [RS1_6, RS2_6] {
            l.adm(&format!("-e {o} [{VIP6}]:{port} -r {rs} -i -w 1"));
        }
    }
    // A 1500-byte datagram does not fit once wrapped (1540): the client
    // hears "packet too big" with the tunnel's MTU, 1460.
    learns_the_tunnel_mtu(&l, &udp6, "1452", 1460);
    let (t, u) = names(20, 25000);
    assert_eq!(tally2(&t, "rs1", "rs2"), (10, 10, Some(0)), "{t}");
    assert_eq!(tally2(&u, "rs1", "rs2"), (10, 10, Some(0)), "{u}");
    // The client's offloads stay on: TSO super-frames of TCP/IPv6, cut
    // by the director into segments that fit once wrapped. (With XDP
    // attached, a veth's peer segments before sending.)
    let up = l.client(&["upload", "--target", &tcp, "--bytes", "5000000"]);
    assert_eq!(up["intact"], true, "{up}");
    assert_eq!(up["received"].as_u64(), Some(5_000_000), "{up}");
    if !l.log("director.log").contains("packet I/O: AF_XDP") {
        assert!(l.dp_counter("gso_segmented") > 0, "no super-frame was cut");
    }
    assert_eq!(
        l.switch_drops(),
        d1,
        "TUN traffic was dropped by the switch"
    );
    let s = l.adm("-S -n");
    holds(&s, &format!("-a -t [{VIP6}]:80 -r [{RS1_6}]:80 -i -w 1"));
}

#[test]
fn an_ipv4_vip_reaches_an_ipv6_real_server_four_in_six_and_dr_to_it_is_refused() {
    let Some(l) = one_server_lab(Lab::start_decap) else {
        return;
    };
    let o = l.uvsadm(&["-a", "-t", &format!("{VIP}:80"), "-r", RS1_6, "-g"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    holds(
        &err,
        "Different address family is allowed only for tunneling servers: real server 2001:2::11",
    );
    l.adm(&format!("-a -t {VIP}:80 -r {RS1_6} -i"));
    let t = l.tcp_names(10);
    assert_eq!(tally(&t, "rs1"), (10, Some(0)), "{t}");
    let up = l.upload(2_000_000);
    assert_eq!(up["intact"], true, "{up}");
    // Listed with its IPv6 real server, as ipvsadm lists a mixed one.
    let c = l.adm("-Lnc");
    assert!(c.contains(&format!("[{RS1_6}]:80")), "{c}");
    let ln = l.adm("-Ln");
    holds(&ln, &format!("  -> [{RS1_6}]:80"));
}
