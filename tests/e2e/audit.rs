//! `uvs audit` on real servers in the namespace lab, set up wrong on
//! purpose: it reports each mistake, `--fix` repairs it, and the traffic
//! through the director agrees with the verdict before and after.

use crate::support::holds;
use crate::support::{Lab, VIP, count, finding};
use serde_json::Value;

fn audit(l: &Lab, node: &str, args: &str) -> (i32, Value) {
    let mut a: Vec<&str> = vec!["audit", "--json"];
    a.extend(args.split_whitespace());
    let o = l.exec(node, env!("CARGO_BIN_EXE_uvs"), &a);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "audit output ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), v)
}

fn status(v: &Value, check: &str) -> String {
    finding(v, check)["status"].as_str().unwrap().to_string()
}

fn fix(l: &Lab, node: &str, args: &str) -> String {
    let file = l.dir.join(format!("{node}-90-uvs.conf"));
    let mut a: Vec<&str> = vec![
        "audit",
        "--fix",
        "--yes",
        "--fix-addresses",
        "--sysctl-file",
        file.to_str().unwrap(),
    ];
    a.extend(args.split_whitespace());
    let o = l.exec(node, env!("CARGO_BIN_EXE_uvs"), &a);
    assert_eq!(
        o.status.code(),
        Some(0),
        "fix: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(file).unwrap_or_default()
}

#[test]
fn wrong_real_servers_are_found_fixed_and_traffic_agrees() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director();
    l.dr_services("rr", 1, 1);
    let dr = format!("--mode dr --vip {VIP}");

    // The lab's real servers are right.
    assert_eq!(audit(&l, "rs1", &dr).0, 0);

    // rs2: the VIP also on eth0 with a /24 (it would answer ARP for it).
    l.sh("rs2", &format!("ip addr add {VIP}/24 dev eth0"));
    let (code, v) = audit(&l, "rs2", &dr);
    assert_eq!(code, 2);
    assert_eq!(status(&v, &format!("VIP {VIP} not on eth0")), "fail");
    fix(&l, "rs2", &dr);
    let a = String::from_utf8(l.exec("rs2", "ip", &["-4", "addr", "show", "eth0"]).stdout).unwrap();
    assert!(!a.contains(VIP), "{a}");

    // rs1: no VIP on lo and the ARP sysctls at their defaults.
    l.sh(
        "rs1",
        &format!(
            "ip addr del {VIP}/32 dev lo && sysctl -qw net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.eth0.arp_ignore=0 \
             net.ipv4.conf.all.arp_announce=0 net.ipv4.conf.eth0.arp_announce=0"
        ),
    );
    let (code, v) = audit(&l, "rs1", &dr);
    assert_eq!(code, 2);
    for c in [
        format!("VIP {VIP} configured"),
        "arp_ignore eth0".into(),
        "arp_announce eth0".into(),
    ] {
        assert_eq!(status(&v, &c), "fail", "{c}");
    }
    // Traffic agrees: rs1's share of the connections fails.
    let t = l.tcp_names(4);
    assert_eq!(
        (count(&t, "rs2"), t["errors"].as_u64()),
        (2, Some(2)),
        "{t}"
    );

    let file = fix(&l, "rs1", &dr);
    holds(&file, "net.ipv4.conf.all.arp_ignore = 1");
    holds(&file, "net.ipv4.conf.all.arp_announce = 2");
    assert_eq!(audit(&l, "rs1", &dr).0, 0);
    let t = l.tcp_names(20);
    assert_eq!(
        (count(&t, "rs1"), count(&t, "rs2"), t["errors"].as_u64()),
        (10, 10, Some(0)),
        "{t}"
    );
}

#[test]
fn tun_rp_filter_and_director_forwarding_in_namespaces() {
    let Some(l) = Lab::up(1) else { return };
    l.sh("rs1", "sysctl -qw net.ipv4.conf.all.rp_filter=1");
    let tun = format!("--mode tun --vip {VIP}");
    let (code, v) = audit(&l, "rs1", &tun);
    assert_eq!(code, 2);
    assert_eq!(status(&v, "rp_filter default"), "fail");
    assert_eq!(status(&v, "decapsulator"), "fail");
    // --fix repairs rp_filter; the missing decapsulator stays (by hand).
    let file = l.dir.join("rs1-tun.conf");
    let o = l.exec(
        "rs1",
        env!("CARGO_BIN_EXE_uvs"),
        &[
            "audit",
            "--fix",
            "--yes",
            "--sysctl-file",
            file.to_str().unwrap(),
            "--mode",
            "tun",
            "--vip",
            VIP,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    holds(&out, "to do by hand: modprobe ipip");
    let rp = l.sh("rs1", "cat /proc/sys/net/ipv4/conf/all/rp_filter");
    assert_eq!(String::from_utf8_lossy(&rp.stdout).trim(), "0");
    assert_eq!(status(&audit(&l, "rs1", &tun).1, "rp_filter default"), "ok");

    // Director role: forwarding on the capture interface is an error.
    l.sh("dir", "sysctl -qw net.ipv4.conf.eth0.forwarding=1");
    let d = format!("--role director --interface eth0 --mode dr --vip {VIP}");
    let (code, v) = audit(&l, "dir", &d);
    assert_eq!(code, 2);
    assert_eq!(status(&v, "forwarding eth0"), "fail");
    let off = finding(&v, "offloads eth0");
    assert!(
        off["value"].as_str().unwrap().contains("tso on"),
        "read from the interface: {off}"
    );
    let o = l.director_once(&["--interface", "eth0"], &l.socket());
    assert!(
        !o.status.success(),
        "the director agrees: it refuses to start"
    );
    fix(&l, "dir", &d);
    assert_eq!(audit(&l, "dir", &d).0, 0);
}
