//! End-to-end: duplicate address detection for a new IPv6 VIP, the
//! counterpart of the ARP probe for an IPv4 one (tests/e2e/hardening.rs).
//! Before the director announces a VIP6 it sends DAD solicitations from
//! `::` to the VIP's solicited-node group; a host that has the address on
//! its eth0 answers (with an advertisement to all nodes), and the VIP is
//! refused with that host's MAC, at `uvsadm -A` and at the start from a
//! config file. A free VIP6 is taken and served.

use crate::support::{CL6, Lab, RS1_6, VIP6, holds, tally};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Another address on `node`'s eth0, with the kernel's own DAD (not
/// `nodad`); returns once it is no longer tentative, so it answers DAD.
fn add_address(l: &Lab, node: &str, addr: &str) {
    l.exec(
        node,
        "ip",
        &["addr", "add", &format!("{addr}/64"), "dev", "eth0"],
    );
    crate::support::wait_until(
        std::time::Duration::from_secs(5),
        || {
            let o = l.exec(
                node,
                "ip",
                &["-6", "addr", "show", "dev", "eth0", "tentative"],
            );
            !String::from_utf8_lossy(&o.stdout).contains(addr)
        },
        || format!("{addr} stayed tentative on {node}"),
    );
}

#[test]
fn ipv6_vips_that_other_hosts_hold_are_refused_and_a_free_one_is_taken() {
    let Some(mut l) = Lab::up(1) else { return };
    l.start_server_on("rs1", &["--tcp", "80"]);
    l.start_director();
    // The client's and a real server's own addresses, and an address the
    // client took (with DAD) on its eth0: each owner answers the probe,
    // and the message names its MAC.
    add_address(&l, "cl", "2001:2::200");
    for (addr, node) in [(CL6, "cl"), (RS1_6, "rs1"), ("2001:2::200", "cl")] {
        let o = l.uvsadm(&["-A", "-t", &format!("[{addr}]:80"), "-s", "rr"]);
        assert!(!o.status.success(), "{addr} accepted");
        let e = stderr(&o);
        assert!(e.contains("is in use") && e.contains(&l.mac(node)), "{e}");
        holds(&e, "answered neighbour discovery for it on eth0");
    }
    // An address of the director itself: the kernel would answer.
    l.exec(
        "dir",
        "ip",
        &["addr", "add", "2001:2::201/128", "dev", "lo"],
    );
    let o = l.uvsadm(&["-A", "-t", "[2001:2::201]:80", "-s", "rr"]);
    assert!(!o.status.success());
    holds(&stderr(&o), "is configured on the director (lo)");
    holds(&stderr(&o), "ip addr del 2001:2::201/128 dev lo");
    assert_eq!(l.adm("-Sn"), "");

    // Nothing was announced: the client still reaches the real server at
    // the server's own MAC.
    l.exec("cl", "ping", &["-c1", "-W1", RS1_6]);
    assert_eq!(l.client_neighbour(RS1_6), Some(l.mac("rs1")));

    // A free VIP6 (held by no host: the real server has it on lo, nodad,
    // where it does not answer on the link) is taken and served.
    l.adm(&format!("-A -t [{VIP6}]:80 -s rr"));
    l.adm(&format!("-a -t [{VIP6}]:80 -r {RS1_6} -g"));
    let t = l.client(&[
        "tcp-names",
        "--target",
        &format!("[{VIP6}]:80"),
        "--count",
        "4",
    ]);
    assert_eq!(tally(&t, "rs1"), (4, Some(0)), "{t}");
}

#[test]
fn a_config_file_with_an_ipv6_vip_another_host_holds_stops_the_start() {
    let Some(l) = Lab::up(1) else { return };
    let path = l.dir.join("uvs.toml");
    let service = |vip: &str| {
        format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"[{vip}]:80\"\nscheduler = \"rr\"\n\
             [[service.real_server]]\naddress = \"{RS1_6}\"\n"
        )
    };
    std::fs::write(&path, service(CL6)).unwrap();
    let o = l.director_once(
        &["-i", "eth0", "--config", path.to_str().unwrap()],
        &l.socket(),
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("is in use") && e.contains(&l.mac("cl")), "{e}");
}
