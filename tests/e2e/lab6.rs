//! The lab's IPv6 plane without the director in the path (testbed/README.md
//! has the plan): every host has its IPv6 address and reaches its
//! neighbours over ICMPv6 and TCP, the routed and NAT networks through
//! their routers, and the real servers keep the IPv6 VIP to themselves
//! (neighbour discovery does not answer for an address on lo).

use crate::support::{CL6, DIR6, Lab, RS1_6, RS2_6, VIP6, holds, wait_until};
use std::time::Duration;

/// `ping -6` from `node` to `addr`: whether it was answered.
fn ping6(l: &Lab, node: &str, addr: &str) -> bool {
    l.exec(node, "ping", &["-6", "-c1", "-W1", addr])
        .status
        .success()
}

fn sh_out(l: &Lab, node: &str, script: &str) -> String {
    String::from_utf8_lossy(&l.sh(node, script).stdout).into_owned()
}

#[test]
fn every_host_has_ipv6_and_reaches_its_neighbours_without_the_director() {
    let Some(mut l) = Lab::up_with(2, &["--routed", "--nat"]) else {
        return;
    };
    let hosts = [
        ("cl", CL6, "eth0"),
        ("dir", DIR6, "eth0"),
        ("dir", "2001:2:0:2::1", "eth1"),
        ("rs1", RS1_6, "eth0"),
        ("rs2", RS2_6, "eth0"),
        ("rt", "2001:2::1", "eth0"),
        ("rt", "2001:2:0:1::1", "eth1"),
        ("rr1", "2001:2:0:1::11", "eth0"),
        ("nat1", "2001:2:0:2::11", "eth0"),
        ("nat2", "2001:2:0:2::12", "eth0"),
    ];
    for (node, addr, dev) in hosts {
        let a = sh_out(&l, node, &format!("ip -6 -o addr show dev {dev}"));
        holds(&a, &format!("{addr}/64"));
        assert!(!a.contains("tentative"), "{node}: {a}");
    }
    for rs in ["rs1", "rs2", "rr1"] {
        let lo = sh_out(&l, rs, "ip -6 -o addr show dev lo");
        holds(&lo, &format!("{VIP6}/128"));
    }

    // The client's own network, the routed one through rt, and the NAT
    // network's hosts to their gateway (the director's eth1, not
    // forwarding: it is only a host here).
    for addr in [RS1_6, RS2_6, DIR6, "2001:2:0:1::11"] {
        assert!(ping6(&l, "cl", addr), "cl -> {addr}");
    }
    assert!(ping6(&l, "nat1", "2001:2:0:2::1"));
    assert!(ping6(&l, "rr1", CL6), "rr1 -> cl through rt");

    // TCP to the traffic servers over IPv6: the names, and the client's
    // own address as the server sees it.
    l.start_servers(2);
    l.start_server("rr1");
    for node in ["rs1", "rs2", "rr1"] {
        let listening = || sh_out(&l, node, "ss -Hltn sport = :80").contains("[::]:80");
        wait_until(Duration::from_secs(5), listening, || {
            format!("{node}: no IPv6 listener")
        });
    }
    for (target, name) in [(RS1_6, "rs1"), (RS2_6, "rs2"), ("2001:2:0:1::11", "rr1")] {
        let t = l.client(&[
            "tcp-names",
            "--target",
            &format!("[{target}]:80"),
            "--count",
            "3",
        ]);
        assert_eq!(crate::support::tally(&t, name), (3, Some(0)), "{t}");
    }
    let who = l.client(&["who", "--target", &format!("[{RS1_6}]:80")]);
    assert!(
        who["peer_seen"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("[{CL6}]:"))),
        "{who}"
    );

    // Nobody answers neighbour solicitations for the VIP: the client,
    // on its network, cannot resolve it, while it resolved rs1.
    assert!(!ping6(&l, "cl", VIP6), "the VIP answered directly");
    let n = sh_out(&l, "cl", &format!("ip -6 neigh show {VIP6}"));
    assert!(!n.contains("lladdr"), "the VIP was resolved: {n}");
    let n = sh_out(&l, "cl", &format!("ip -6 neigh show {RS1_6}"));
    holds(&n, &l.mac("rs1"));
}
