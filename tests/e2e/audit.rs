//! `uvs audit` on real servers in the namespace lab, set up wrong on
//! purpose: it reports each mistake, `--fix` repairs it, and the traffic
//! through the director agrees with the verdict before and after (for an
//! IPv6 VIP, traffic routed to the real server as a DR director sends it,
//! the director's own IPv6 plane being still to come).

use crate::support::holds;
use crate::support::{Lab, RS1_6, VIP, VIP6, count, finding, wait_until};
use serde_json::Value;
use std::time::Duration;

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

/// `uvs audit --fix --yes --fix-addresses ARGS` in `node`: its exit
/// status and what it printed.
fn fix_run(l: &Lab, node: &str, args: &str) -> (i32, String) {
    let file = l.dir.join(format!("{node}-90-uvs.conf"));
    let mut a: Vec<&str> = vec!["audit", "--fix", "--yes", "--fix-addresses"];
    a.extend(["--sysctl-file", file.to_str().unwrap()]);
    a.extend(args.split_whitespace());
    let o = l.exec(node, env!("CARGO_BIN_EXE_uvs"), &a);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        o.status.code().unwrap_or(-1),
        out + &String::from_utf8_lossy(&o.stderr),
    )
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

/// Whether `node` gets an answer from `addr` over ICMPv6 (1 s at most).
fn ping6(l: &Lab, node: &str, addr: &str) -> bool {
    l.exec(node, "ping", &["-6", "-c1", "-W1", addr])
        .status
        .success()
}

/// The audit of `args` on rs1 fails (exit 2) on each of `checks`.
#[track_caller]
fn fails(l: &Lab, args: &str, checks: &[String]) {
    let (code, v) = audit(l, "rs1", args);
    assert_eq!(code, 2, "{v}");
    for c in checks {
        assert_eq!(status(&v, c), "fail", "{c}: {v}");
    }
}

/// `--fix` repairs rs1 for `args`, and the audit then passes.
#[track_caller]
fn fixed(l: &Lab, args: &str) {
    fix(l, "rs1", args);
    assert_eq!(audit(l, "rs1", args).0, 0);
}

#[test]
fn ipv6_vip_mistakes_are_found_fixed_and_traffic_agrees() {
    let Some(l) = Lab::up(1) else { return };
    let dr = format!("--mode dr --vip {VIP6}");
    let vip = |c: &str| format!("VIP {VIP6} {c}");
    // The lab's real server is right, for either family and both.
    assert_eq!(
        audit(&l, "rs1", &format!("--mode dr --vip {VIP} --vip {VIP6}")).0,
        0
    );
    // The client sends the VIP to rs1's address, as a DR director does;
    // the director's namespace, on the same network, has to ask NDP.
    l.sh("cl", &format!("ip -6 route add {VIP6}/128 via {RS1_6}"));
    assert!(ping6(&l, "cl", VIP6));
    assert!(!ping6(&l, "dir", VIP6), "rs1 answered NDP for the VIP");
    let forget = || l.sh("dir", "ip -6 neigh flush dev eth0");

    // No VIP on lo: DR traffic is dropped.
    l.sh("rs1", &format!("ip -6 addr del {VIP6}/128 dev lo"));
    fails(&l, &dr, &[vip("configured")]);
    assert!(!ping6(&l, "cl", VIP6));
    fixed(&l, &dr);
    assert!(ping6(&l, "cl", VIP6));

    // A /64 on lo.
    l.sh(
        "rs1",
        &format!("ip -6 addr del {VIP6}/128 dev lo && ip -6 addr add {VIP6}/64 dev lo"),
    );
    fails(&l, &dr, &[vip("prefix")]);
    fixed(&l, &dr);

    // The VIP on eth0 as well: rs1 answers NDP for it, and the director's
    // namespace reaches it directly.
    l.sh("rs1", &format!("ip -6 addr add {VIP6}/64 dev eth0 nodad"));
    fails(&l, &dr, &[vip("not on eth0")]);
    forget();
    assert!(ping6(&l, "dir", VIP6), "NDP for the VIP on eth0");
    fixed(&l, &dr);
    forget();
    assert!(!ping6(&l, "dir", VIP6));

    // Forwarding and a proxy entry for the VIP: rs1 answers NDP for it
    // and calls itself a router.
    l.sh(
        "rs1",
        &format!("sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.eth0.proxy_ndp=1 && ip -6 neigh add proxy {VIP6} dev eth0"),
    );
    fails(
        &l,
        &dr,
        &["proxy_ndp eth0".into(), "ipv6 forwarding eth0".into()],
    );
    forget();
    assert!(ping6(&l, "dir", VIP6), "proxy NDP for the VIP");
    assert!(ping6(&l, "dir", RS1_6));
    let router = || {
        String::from_utf8_lossy(&l.sh("dir", &format!("ip -6 neigh show {RS1_6}")).stdout)
            .contains("router")
    };
    assert!(router(), "forwarding: router flag in rs1's NA");
    fixed(&l, &dr);
    forget();
    assert!(!ping6(&l, "dir", VIP6));
    assert!(ping6(&l, "dir", RS1_6) && !router());

    // lo's addresses not kept: the IPv6 VIP goes with lo, IPv4's stays.
    l.sh("rs1", "sysctl -qw net.ipv6.conf.lo.keep_addr_on_down=0");
    let (code, v) = audit(&l, "rs1", &dr);
    assert_eq!(
        (code, status(&v, "keep_addr_on_down lo")),
        (1, "warn".into()),
        "{v}"
    );
    let bounce = || {
        l.sh(
            "rs1",
            "ip link set lo down && ip link set lo up && ip -o addr show dev lo",
        )
    };
    let lo = String::from_utf8_lossy(&bounce().stdout).into_owned();
    assert!(lo.contains(VIP) && !lo.contains(VIP6), "{lo}");
    fails(&l, &dr, &[vip("configured")]);
    fixed(&l, &dr);
    holds(&String::from_utf8_lossy(&bounce().stdout), VIP6);

    // IPv6 off on lo (the VIP goes), then on eth0 (the traffic is dropped).
    l.sh("rs1", "sysctl -qw net.ipv6.conf.lo.disable_ipv6=1");
    fails(&l, &dr, &["disable_ipv6 lo".into(), vip("configured")]);
    fixed(&l, &dr);
    assert!(ping6(&l, "cl", VIP6));
    l.sh("rs1", "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1");
    fails(&l, &dr, &["disable_ipv6 eth0".into()]);
    assert!(!ping6(&l, "cl", VIP6));
    fixed(&l, &dr);
    // Turning IPv6 back on does not bring the address back.
    l.sh("rs1", &format!("ip -6 addr add {RS1_6}/64 dev eth0 nodad"));
    assert!(ping6(&l, "cl", VIP6));

    // rs1's own address is taken (by the director's namespace) when rs1
    // adds it with DAD on: DAD fails and the address is never used.
    l.sh("dir", &format!("ip -6 addr add {RS1_6}/64 dev eth0 nodad"));
    l.sh(
        "rs1",
        &format!("sysctl -qw net.ipv6.conf.eth0.accept_dad=1 && ip -6 addr del {RS1_6}/64 dev eth0 && ip -6 addr add {RS1_6}/64 dev eth0"),
    );
    let dad = || audit(&l, "rs1", &dr).1;
    wait_until(
        Duration::from_secs(10),
        || finding(&dad(), "ipv6 addresses eth0")["value"] == format!("{RS1_6}/64 (dadfailed)"),
        || format!("no failed DAD: {}", dad()),
    );
    fails(&l, &dr, &["ipv6 addresses eth0".into()]);
    // Once the duplicate is gone, --fix adds it again; DAD passes.
    l.sh("dir", &format!("ip -6 addr del {RS1_6}/64 dev eth0"));
    let (code, out) = fix_run(&l, "rs1", &dr);
    assert!(code == 0 || code == 1, "{out}");
    wait_until(
        Duration::from_secs(10),
        || audit(&l, "rs1", &dr).0 == 0,
        || format!("DAD did not pass: {}", dad()),
    );
    // The client may have learnt the address at the duplicate's MAC.
    l.sh("cl", "ip -6 neigh flush dev eth0");
    assert!(ping6(&l, "cl", VIP6));
}

#[test]
fn ipv6_tun_needs_a_decapsulator_with_ipv6_on() {
    let Some(mut l) = Lab::up(1) else { return };
    let tun = format!("--mode tun --vip {VIP6}");
    let (code, v) = audit(&l, "rs1", &tun);
    assert_eq!(code, 2);
    let d = finding(&v, "decapsulator ipv6");
    assert_eq!(
        (d["status"].as_str(), d["value"].as_str()),
        (
            Some("fail"),
            Some("none (no ip6tnl or sit device, no uvs decap)")
        )
    );
    holds(d["fixes"][0]["command"].as_str().unwrap(), "uvs decap");
    assert_eq!(status(&v, "disable_ipv6 default"), "ok");
    // uvs decap unwraps IPv6 too, but its TUN device was made while
    // conf/default has IPv6 off: the packets decapsulated into it would be
    // dropped.
    l.sh("rs1", "sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    l.start_decap("rs1");
    let (_, v) = audit(&l, "rs1", &tun);
    let d = finding(&v, "decapsulator ipv6");
    assert_eq!(
        (d["status"].as_str(), d["value"].as_str()),
        (Some("ok"), Some("uvs decap is running"))
    );
    assert_eq!(status(&v, "disable_ipv6 uvs-decap0"), "fail");
    // --fix turns IPv6 on there, and nothing is left to do.
    let (code, out) = fix_run(&l, "rs1", &tun);
    assert_eq!(code, 0, "{out}");
    let on = l.sh("rs1", "cat /proc/sys/net/ipv6/conf/uvs-decap0/disable_ipv6");
    assert_eq!(String::from_utf8_lossy(&on.stdout).trim(), "0");
    assert_eq!(
        status(&audit(&l, "rs1", &tun).1, "disable_ipv6 uvs-decap0"),
        "ok"
    );
}
