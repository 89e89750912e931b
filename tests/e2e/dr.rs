//! End-to-end: real TCP and UDP traffic from a client namespace through
//! `uvs director` (DR) to real-server namespaces, each case over IPv4 and
//! over IPv6 (`name::v4`, `name::v6`).

use crate::both_families;
use crate::support::holds;
use crate::support::{Fam, Lab, count, tally2};
use std::time::Duration;

/// A lab serving on two real servers, the director started, clients and
/// standard services of family `fam`.
fn serving(fam: Fam) -> Option<Lab> {
    let mut l = Lab::up_serving(2)?;
    l.fam = fam;
    Some(l)
}

both_families!(tcp_and_udp_split_by_rr_and_wrr, |fam| {
    let Some(l) = serving(fam) else { return };
    l.dr_services("wrr", 3, 1);
    let t = l.tcp_names(400);
    assert_eq!(tally2(&t, "rs1", "rs2"), (300, 100, Some(0)), "{t}");
    let u = l.udp_names(400, 20000);
    assert_eq!(tally2(&u, "rs1", "rs2"), (300, 100, Some(0)), "{u}");
    let stats = l.adm("-Ln --stats --exact");
    let tcp_line = stats.lines().find(|x| x.starts_with("TCP")).unwrap();
    assert_eq!(tcp_line.split_whitespace().nth(2), Some("400"), "{stats}");
    // --rate: the 2-second estimator has seen the 400 connections.
    std::thread::sleep(Duration::from_millis(2200));
    let rate = l.adm("-Ln --rate");
    let line = rate.lines().find(|x| x.starts_with("TCP")).unwrap();
    let cps: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(cps > 0, "{rate}");

    for (o, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-E {o} {} -s rr", fam.vip_at(port)));
    }
    let t = l.tcp_names(200);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (100, 100), "{t}");
    let u = l.udp_names(200, 21000);
    assert_eq!((count(&u, "rs1"), count(&u, "rs2")), (100, 100), "{u}");
});

/// The standard DR services (rr) with one long connection under way
/// (`stick.json`): `messages` requests, `interval_ms` apart.
fn lab_with_stick(fam: Fam, messages: u32, interval_ms: u32) -> Option<Lab> {
    let mut l = serving(fam)?;
    l.dr_services("rr", 1, 1);
    l.stick_bg(messages, interval_ms, "stick.json");
    std::thread::sleep(Duration::from_millis(300));
    Some(l)
}

both_families!(one_connection_sticks_while_new_ones_rotate, |fam| {
    let Some(mut l) = lab_with_stick(fam, 1000, 2) else {
        return;
    };
    let t = l.tcp_names(20);
    let s = l.wait_child_logs("stick.json", Duration::from_secs(60));
    let counts = s["counts"].as_object().unwrap();
    assert!(s["error"].is_null(), "{s}");
    assert_eq!(counts.len(), 1, "all 1000 answers from one server: {s}");
    assert_eq!(counts.values().next().unwrap().as_u64(), Some(1000));
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t}");
});

/// The real server a running connection was scheduled to, from -Lnc
/// (`addr:port` or `[addr]:port`, the address alone returned).
fn established_dest(l: &Lab) -> String {
    let c = l.adm("-Lnc");
    let row = c
        .lines()
        .find(|r| r.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("{c}"));
    let d = row.split_whitespace().last().unwrap();
    let (addr, _port) = d.rsplit_once(':').unwrap();
    addr.trim_matches(['[', ']']).to_string()
}

both_families!(weight_zero_drains_and_delete_removes, |fam: Fam| {
    let Some(mut l) = lab_with_stick(fam, 150, 10) else {
        return;
    };
    let vip80 = fam.vip_at(80);
    let busy = established_dest(&l);
    let (busy_name, other_name, other) = if busy == fam.rs(1) {
        ("rs1", "rs2", fam.rs(2))
    } else {
        ("rs2", "rs1", fam.rs(1))
    };
    l.adm(&format!("-e -t {vip80} -r {busy} -g -w 0"));
    let row = format!("  -> {:<28} Route   0", fam.at(&busy, 80));
    holds(&l.adm("-Ln"), &row);
    let t = l.tcp_names(10);
    assert_eq!(
        count(&t, other_name),
        10,
        "new connections avoid weight 0: {t}"
    );
    let s = l.wait_child_logs("stick.json", Duration::from_secs(60));
    assert!(
        s["error"].is_null(),
        "running connection survives weight 0: {s}"
    );
    assert_eq!(s["counts"][busy_name].as_u64(), Some(150), "{s}");

    // -d: the server disappears, and so do its connections.
    l.stick_bg(400, 10, "stick2.json");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(established_dest(&l), other);
    l.adm(&format!("-d -t {vip80} -r {other}"));
    let listing = l.adm("-Ln");
    let gone = fam.at(other, 80);
    assert!(!listing.contains(&format!("{gone} ")), "{listing}");
    assert!(!l.adm("-Lnc").contains(&gone));
    let s = l.wait_child_logs("stick2.json", Duration::from_secs(60));
    assert!(
        !s["error"].is_null(),
        "connection to a removed server ends: {s}"
    );
    assert!(s["counts"][other_name].as_u64().unwrap_or(0) < 400, "{s}");
    // Only the weight-0 server is left: no destination, and the client is
    // told so at once (ICMP or ICMPv6 port unreachable, as IPVS does).
    let t = l.tcp_names(1);
    assert_eq!(t["errors"].as_u64(), Some(1), "{t}");
    assert!(
        t["first_errors"][0].as_str().unwrap().contains("refused"),
        "{t}"
    );
});

both_families!(five_megabyte_upload_with_client_offloads_on, |fam| {
    let Some(l) = serving(fam) else { return };
    let k = l.exec("cl", "ethtool", &["-k", "eth0"]);
    let k = String::from_utf8_lossy(&k.stdout);
    assert!(
        k.contains("tcp-segmentation-offload: on"),
        "client offloads must stay on: {k}"
    );
    holds(&k, "tx-checksumming: on");
    l.dr_services("rr", 1, 1);
    for _ in 0..2 {
        let u = l.upload(5000000);
        assert_eq!(u["intact"], true, "{u}");
        assert_eq!(u["received"].as_u64(), Some(5_000_000), "{u}");
    }
    for rs in ["rs1", "rs2"] {
        let n = l.nstat(rs);
        assert_eq!(n.get("TcpInCsumErrors").copied().unwrap_or(0), 0, "{rs}");
    }
});

both_families!(director_kernel_stays_quiet_about_vip_traffic, |fam| {
    let Some(l) = serving(fam) else { return };
    l.dr_services("wrr", 3, 1);
    let before = l.nstat("dir");
    l.tcp_names(100);
    l.udp_names(100, 22000);
    l.upload(1000000);
    let after = l.nstat("dir");
    let quiet: &[&str] = match fam {
        Fam::V4 => &[
            "TcpOutRsts",
            "IcmpOutMsgs",
            "IcmpOutDestUnreachs",
            "IpForwDatagrams",
        ],
        // Not Icmp6OutMsgs: the kernel's own neighbour discovery (it
        // resolves the real servers for uvs) counts there.
        Fam::V6 => &[
            "TcpOutRsts",
            "Icmp6OutDestUnreachs",
            "Icmp6OutRedirects",
            "Icmp6OutParmProblems",
            "Icmp6OutTimeExcds",
            "Ip6OutForwDatagrams",
        ],
    };
    let moved = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    for k in quiet {
        assert_eq!(moved(k), 0, "director kernel counter {k} moved");
    }
    // Proof the counters above were measured while VIP traffic passed
    // through: with AF_PACKET the kernel saw (and silently dropped) the
    // frames; with AF_XDP the XDP program took them all before it could
    // (IPv6 frames it does not steer reach the kernel as with AF_PACKET).
    let seen = moved(match fam {
        Fam::V4 => "IpInAddrErrors",
        Fam::V6 => "Ip6InAddrErrors",
    });
    let steered = l.dp_counter_settled("xdp_rx");
    // Or the tc program carried them (the default), the kernel's stack
    // seeing only what goes up to uvs.
    let carried = l.dp_counter("offload_forwarded");
    match steered {
        0 => assert!(
            seen > 100 || carried > 300,
            "InAddrErrors {seen}, offload_forwarded {carried}"
        ),
        _ => assert!(
            seen == 0 && steered > 300,
            "InAddrErrors {seen}, xdp_rx {steered}"
        ),
    }
});

#[test]
fn director_refuses_to_start_with_forwarding_on() {
    let Some(l) = Lab::up(1) else { return };
    l.sh("dir", "sysctl -qw net.ipv4.conf.eth0.forwarding=1");
    let o = l.director_once(&["--interface", "eth0"], &l.socket());
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    holds(&e, "net.ipv4.conf.eth0.forwarding=0");
    // IPv6 forwards by `all` (there is no per-link switch for transit).
    l.sh("dir", "sysctl -qw net.ipv4.conf.eth0.forwarding=0");
    l.sh("dir", "sysctl -qw net.ipv6.conf.all.forwarding=1");
    let o = l.director_once(&["--interface", "eth0"], &l.socket());
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    holds(&e, "sysctl -w net.ipv6.conf.all.forwarding=0");
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["director", "--interface", "nosuch0"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch0"));
}

both_families!(
    /// `--garp-refresh 1`: the director announces its VIPs every second
    /// (gratuitous ARP; an unsolicited neighbour advertisement for an
    /// IPv6 VIP), so a client whose entry for the VIP went astray (here
    /// pointed at a real server's MAC by hand) comes back within about a
    /// second; without the flag the entry stays where it was.
    garp_refresh_brings_a_stray_neighbour_entry_back,
    |fam: Fam| {
        for refresh in [false, true] {
            let Some(mut l) = Lab::up(1) else { return };
            l.start_server("rs1");
            let mut args = vec!["-i", "eth0"];
            if refresh {
                args.extend(["--garp-refresh", "1"]);
            }
            l.start_director_with(&args);
            l.adm(&format!("-A -t {} -s rr", fam.vip_at(80)));
            l.adm(&format!("-a -t {} -r {} -g", fam.vip_at(80), fam.rs(1)));
            let (vip, stray) = (fam.vip(), l.mac("rs1"));
            let o = l.sh(
                "cl",
                &format!("ip neigh replace {vip} lladdr {stray} dev eth0 nud reachable"),
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::thread::sleep(Duration::from_millis(2500));
            let o = l.exec("cl", "ip", &["neigh", "show", vip, "dev", "eth0"]);
            let entry = String::from_utf8_lossy(&o.stdout).into_owned();
            let dir = l.mac("dir");
            match refresh {
                true => assert!(entry.contains(&dir), "{entry}"),
                false => assert!(entry.contains(&stray), "{entry}"),
            }
        }
    }
);
