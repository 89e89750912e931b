//! End-to-end: the schedulers with real TCP connections through the
//! director: wrr's live order is the kernel's (however the servers
//! reached the table), sh and mh keep a client on one server, mh-port
//! spreads its ports, and the flags survive save and restore.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count};

const RS3: &str = "198.18.0.13";

/// `n` sequential TCP connections to VIP:80: the server of each, in
/// order.
fn order(l: &Lab, n: usize) -> Vec<String> {
    let v = l.client_line(&format!(
        "tcp-timeline --target {VIP}:80 --count {n} --interval-ms 0"
    ));
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["server"].as_str().unwrap_or("error").to_string())
        .collect()
}

fn names(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// rs1 (weight 4), rs2 (3), rs3 (2) added in that order, one command at
/// a time or in one restore: the kernel's list is rs3 rs2 rs1 and its
/// first add_dest leaves cw at 1 (gcd 4: mw = 4 - 3), so IPVS starts
/// with the cw = 1 pass (ip_vs_wrr.c, __ip_vs_update_dest). Bound anew
/// with `-E -s wrr`, it starts at cw = mw.
/// uvs's own rotation: on the suite's backend, or `packet` where the
/// default would let the kernel program schedule (its rotation starts
/// afresh at each change of the service, docs/io.md).
#[test]
fn wrr_live_order_is_the_kernels() {
    let Some(mut l) = Lab::up(3) else { return };
    let io = Lab::own_path_io();
    l.start_servers(3);
    l.start_director_with(&["--io", &io, "-i", "eth0"]);
    let kernel = names("rs3 rs2 rs1 rs1 rs2 rs1 rs3 rs2 rs1");
    let adds = [(RS1, 4), (RS2, 3), (RS3, 2)];
    l.adm(&format!("-A -t {VIP}:80 -s wrr"));
    for (rs, w) in adds {
        l.adm(&format!("-a -t {VIP}:80 -r {rs} -g -w {w}"));
    }
    let o = order(&l, 18);
    assert_eq!(o[..9], kernel[..], "{o:?}");
    assert_eq!(o[9..], kernel[..], "{o:?}");

    // The same commands in one restore: one table for all of them.
    let mut rules = format!("-A -t {VIP}:80 -s wrr\n");
    for (rs, w) in adds {
        rules += &format!("-a -t {VIP}:80 -r {rs}:80 -g -w {w}\n");
    }
    l.clear_and_restore(&rules);
    assert_eq!(order(&l, 9), kernel);

    // Bound anew with the servers in place: cw starts at mw = 4.
    l.adm(&format!("-E -t {VIP}:80 -s rr"));
    l.adm(&format!("-E -t {VIP}:80 -s wrr"));
    assert_eq!(order(&l, 9), names("rs1 rs2 rs1 rs3 rs2 rs1 rs3 rs2 rs1"));
}

/// sh and mh: one client, one server, across 40 connections (new ports
/// each time); with mh-port its connections spread over the servers.
/// The flags are listed and saved as ipvsadm 1.31 does, and survive
/// `-S -n | -C; -R`.
#[test]
fn sh_and_mh_keep_a_client_and_mh_port_spreads_it() {
    let Some(l) = Lab::up_serving(3) else { return };
    for (sched, flags) in [
        ("sh", ""),
        ("sh", "sh-fallback,sh-port"),
        ("mh", ""),
        ("mh", "mh-fallback"),
    ] {
        let b = if flags.is_empty() {
            String::new()
        } else {
            format!(" -b {flags}")
        };
        l.adm(&format!("-A -t {VIP}:80 -s {sched}{b}"));
        for rs in [RS1, RS2, RS3] {
            l.adm(&format!("-a -t {VIP}:80 -r {rs} -g -w 1"));
        }
        let t = l.tcp_names(40);
        let served: Vec<u64> = ["rs1", "rs2", "rs3"].iter().map(|n| count(&t, n)).collect();
        if flags.contains("port") {
            assert!(
                served.iter().filter(|n| **n > 0).count() >= 2,
                "{sched} {flags}: {t}"
            );
        } else {
            assert!(
                served.contains(&40),
                "{sched} {flags}: one server for the client: {t}"
            );
        }
        l.adm("-C");
    }
    l.adm(&format!("-A -t {VIP}:80 -s mh -b mh-port,mh-fallback"));
    for rs in [RS1, RS2, RS3] {
        l.adm(&format!("-a -t {VIP}:80 -r {rs} -g -w 1"));
    }
    let t = l.tcp_names(60);
    let used = ["rs1", "rs2", "rs3"]
        .iter()
        .filter(|n| count(&t, n) > 0)
        .count();
    assert!(used >= 2, "mh-port spreads one client's ports: {t}");
    let listing = l.adm("-Ln");
    holds(
        &listing,
        &format!("TCP  {VIP}:80 mh (mh-fallback,mh-port)\n"),
    );
    let saved = l.adm("-S -n");
    holds(
        &saved,
        &format!("-A -t {VIP}:80 -s mh -b mh-fallback,mh-port\n"),
    );
    l.clear_and_restore(&saved);
    // The same table (the counters aside).
    let table = |s: String| -> Vec<String> {
        s.lines()
            .map(|x| x.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(table(l.adm("-Ln")), table(listing));
    assert_eq!(l.adm("-S -n"), saved);
}
