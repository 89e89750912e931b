//! New flows scheduled by the kernel program itself (issue 29, `--offload`
//! on a service the program can schedule): real TCP and UDP between the
//! lab's namespaces, with what uvs knows of them (counters, `-Lnc`,
//! `--stats`, the backup's table) and where their frames go (counted on
//! the lab's switch). These pick their backend (`--io packet` for the tc
//! program, `--io xdp` for the XDP one), so they run in the suite's
//! default pass only, not again in the `UVS_IO` passes.

use crate::ha::{pair_with, sticks, sticks_done};
use crate::support::{Fam, Lab, RS1, RS2, VIP, count, wait_until};
use crate::xdp::xdp_forwarding_lab;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A lab of two real servers, frames counted on its switch by `rules`
/// ([`count_on_switch`]), the director scheduling new flows in its tc
/// program with the standard rr DR services. `None` in a pass of the
/// suite that does not run these (their backend is their own).
fn tc_lab(rules: &[&str]) -> Option<Lab> {
    if !crate::support::fixed_backend_run() {
        return None;
    }
    let mut l = Lab::up(2)?;
    l.start_servers(2);
    count_on_switch(&l, rules);
    l.start_director_with(&TC);
    l.dr_services("rr", 1, 1);
    Some(l)
}

/// The director's arguments for the tc program scheduling new flows.
const TC: [&str; 5] = ["--io", "packet", "-i", "eth0", "--offload"];

/// Counts frames on the lab's switch: each rule of `rules` (nft bridge
/// syntax, forward hook) gets a counter, read back by [`switch_counts`].
fn count_on_switch(l: &Lab, rules: &[&str]) {
    let counted: Vec<String> = rules.iter().map(|r| format!("{r} counter")).collect();
    l.switch_table("ks", &counted);
}

/// The packets each rule of [`count_on_switch`] counted, in its order.
fn switch_counts(l: &Lab) -> Vec<u64> {
    let o = l.sh("sw", "nft list table bridge ks");
    let s = String::from_utf8_lossy(&o.stdout);
    s.lines()
        .filter_map(|x| {
            let (_, after) = x.split_once("counter packets ")?;
            after.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// The (TCP, UDP) services' Conns and InPkts, from `--stats`.
fn stats_rows(l: &Lab) -> [(u64, u64); 2] {
    ["TCP", "UDP"].map(|p| {
        let s = l.service_stats(p);
        (s[0], s[1])
    })
}

/// Issue 29: several hundred short TCP connections and as many UDP flows
/// through an rr DR service, scheduled by the tc program: uvs enters each
/// one from the program's report (`kernel_scheduled`, `--stats` Conns),
/// sees few of their frames (their FINs stay in the kernel, reported:
/// listed FIN_WAIT), lists a live one ESTABLISHED with the real server its
/// frames go to, and InPkts counts every frame the client sent (TCP
/// within two).
#[test]
fn kernel_scheduled_flows_are_entered_counted_and_listed() {
    let Some(mut l) = tc_lab(&[
        &format!("iifname \"p-cl\" ip daddr {VIP} tcp dport 80"),
        &format!("iifname \"p-cl\" ip daddr {VIP} udp dport 53"),
    ]) else {
        return;
    };
    // UDP flows end 2 s after their datagram: taken back, then counted.
    l.adm("--set 0 0 2");
    let (conns, flows) = (300u64, 300u64);
    l.stick_bg(40, 50, "stick.json");
    std::thread::sleep(Duration::from_millis(300));
    let listed = l.adm("-Lnc");
    let t0 = Instant::now();
    let t = l.tcp_names(conns as u32);
    let u = l.udp_names(flows as u32, 30000);
    let took = t0.elapsed();
    let stick = l.wait_child_logs("stick.json", Duration::from_secs(30));

    let live = listed
        .lines()
        .find(|x| x.starts_with("TCP") && x.contains("ESTABLISHED"))
        .unwrap_or_else(|| panic!("the live connection is not listed: {listed}"));
    let server = server_name(live.split_whitespace().last().unwrap());
    assert!(stick["error"].is_null(), "{stick}");
    assert_eq!(count(&stick, server), 40, "listed at {server}: {stick}");
    println!("-Lnc of the live connection: {live}");

    let all = conns + flows + 1;
    l.wait_counter("kernel_scheduled", all);
    let scheduled = l.dp_counter("kernel_scheduled");
    let rx = l.dp_counter_settled("rx_frames");
    let sent = switch_counts(&l);
    let stats = stats_rows(&l);
    println!(
        "{conns} TCP connections ({} rs1, {} rs2, {} errors) and {flows} UDP flows ({} rs1, \
         {} rs2, {} errors) in {} ms: kernel_scheduled {scheduled}, kernel_refused {}, \
         rx_frames {rx} of {} TCP and {} UDP frames the client sent; --stats Conns {} TCP, {} UDP",
        count(&t, "rs1"),
        count(&t, "rs2"),
        t["errors"],
        count(&u, "rs1"),
        count(&u, "rs2"),
        u["errors"],
        took.as_millis(),
        l.dp_counter("kernel_refused"),
        sent[0],
        sent[1],
        stats[0].0,
        stats[1].0,
    );
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), conns, "{t}");
    assert_eq!(count(&u, "rs1") + count(&u, "rs2"), flows, "{u}");
    assert_eq!(scheduled, all);
    assert_eq!(l.dp_counter("kernel_refused"), 0);
    assert_eq!((stats[0].0, stats[1].0), (conns + 1, flows));
    // rr over two servers, a position per CPU: both get a good share.
    for (v, n) in [(&t, conns), (&u, flows)] {
        for rs in ["rs1", "rs2"] {
            assert!(count(v, rs) >= n / 4, "{rs}: {v}");
        }
    }
    // No TCP connection's FIN comes up (the program reports it and
    // forwards the rest), nor any UDP datagram.
    assert!(rx < conns / 2, "rx_frames {rx} of {sent:?}");
    let closing = l.adm("-Lnc");
    let fin_wait = closing.lines().filter(|x| x.contains("FIN_WAIT")).count() as u64;
    assert!(
        fin_wait + 5 >= conns,
        "{fin_wait} FIN_WAIT of {conns}: {closing}"
    );

    // The UDP flows end on their timer (2 s, the sweep); what the
    // program forwarded was counted by real server meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    let after = stats_rows(&l);
    let sent = switch_counts(&l);
    println!(
        "InPkts {} TCP, {} UDP; the client sent {} and {}",
        after[0].1, after[1].1, sent[0], sent[1]
    );
    // UDP exactly (idle flows taken back by the sweep); TCP at most two
    // short: the take-back reads the program's entry, then deletes it,
    // and a frame the program counts in between is lost (tc_offload
    // allows the same). Seen once in about 50 runs.
    assert_eq!(after[1].1, sent[1]);
    assert!(
        after[0].1 <= sent[0] && after[0].1 + 2 >= sent[0],
        "TCP InPkts {} of {} frames",
        after[0].1,
        sent[0]
    );
}

/// The lab's name of real server `addr:port` in a listing.
fn server_name(dest: &str) -> &'static str {
    match dest.rsplit_once(':').map(|x| x.0) {
        Some(RS1) => "rs1",
        Some(RS2) => "rs2",
        _ => panic!("not a real server of the lab: {dest}"),
    }
}

/// Client addresses the client namespace gains for the sh service.
const CLIENTS: u8 = 24;
/// UDP flows, each from its own port, for the mh service.
const FLOWS: u16 = 128;

/// What one run of `hashed_choices` saw: the real server of the TCP
/// connection from each client address (sh), the real server of the
/// UDP flow from each client port (mh with mh-port, from `-Lnc`), and
/// `kernel_scheduled`.
struct Choices {
    tcp: Vec<&'static str>,
    udp: BTreeMap<u16, &'static str>,
    scheduled: u64,
}

/// A TCP connection from each of `CLIENTS` client addresses to an sh
/// service, and `FLOWS` UDP flows from one address to an mh one with
/// mh-port, through a director with `--offload` or without.
fn hashed_choices(offload: bool) -> Option<Choices> {
    let mut l = Lab::up(2)?;
    l.start_servers(2);
    let addrs: Vec<String> = (0..CLIENTS)
        .map(|i| format!("198.18.0.{}", 20 + i))
        .collect();
    let adds: Vec<String> = addrs
        .iter()
        .map(|a| format!("ip addr add {a}/24 dev eth0"))
        .collect();
    let o = l.sh("cl", &adds.join(" && "));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    l.start_director_with(if offload { &TC } else { &TC[..4] });
    l.adm(&format!("-A -t {VIP}:80 -s sh"));
    l.adm(&format!("-A -u {VIP}:53 -s mh -b mh-port"));
    for rs in [RS1, RS2] {
        l.adm(&format!("-a -t {VIP}:80 -r {rs} -g"));
        l.adm(&format!("-a -u {VIP}:53 -r {rs} -g"));
    }
    let target = format!("{VIP}:80");
    let tcp = addrs
        .iter()
        .map(|a| {
            let v = l.client(&[
                "tcp-names",
                "--target",
                &target,
                "--count",
                "1",
                "--source",
                a,
            ]);
            match (count(&v, "rs1"), count(&v, "rs2")) {
                (1, 0) => "rs1",
                (0, 1) => "rs2",
                _ => panic!("from {a}: {v}"),
            }
        })
        .collect();
    let u = l.udp_names(u32::from(FLOWS), 31000);
    let listing = l.adm("-Lnc");
    let udp: BTreeMap<u16, &str> = listing
        .lines()
        .filter(|x| x.starts_with("UDP"))
        .map(|x| {
            let f: Vec<&str> = x.split_whitespace().collect();
            let port = f[3].rsplit_once(':').unwrap().1.parse().unwrap();
            (port, server_name(f[5]))
        })
        .collect();
    assert_eq!(udp.len(), usize::from(FLOWS), "{listing}");
    // The flows' answers came from the servers the listing names.
    for rs in ["rs1", "rs2"] {
        let listed = udp.values().filter(|x| **x == rs).count() as u64;
        assert_eq!(listed, count(&u, rs), "{u}\n{listing}");
    }
    let scheduled = l.dp_counter("kernel_scheduled");
    Some(Choices {
        tcp,
        udp,
        scheduled,
    })
}

/// Issue 29: the program's sh and mh choices are uvs's own. The same
/// clients (24 addresses to an sh service, 128 ports to an mh one with
/// mh-port) reach the same real servers through uvs's path (`--io
/// packet`) and through the tc program (`--offload`, every flow
/// scheduled by it).
#[test]
fn the_program_hashes_new_flows_to_the_real_servers_uvs_would_choose() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(own) = hashed_choices(false) else {
        return;
    };
    let Some(kernel) = hashed_choices(true) else {
        return;
    };
    let share = |v: Vec<&str>| {
        let n = v.iter().filter(|x| **x == "rs1").count();
        format!("{n} rs1, {} rs2", v.len() - n)
    };
    println!(
        "sh: {} through uvs, {} through the program; mh: {} and {}; kernel_scheduled {} and {}",
        share(own.tcp.clone()),
        share(kernel.tcp.clone()),
        share(own.udp.values().copied().collect()),
        share(kernel.udp.values().copied().collect()),
        own.scheduled,
        kernel.scheduled
    );
    assert_eq!(own.scheduled, 0);
    assert_eq!(kernel.scheduled, u64::from(CLIENTS) + u64::from(FLOWS));
    for c in [&own, &kernel] {
        assert!(
            c.tcp.contains(&"rs1") && c.tcp.contains(&"rs2"),
            "{:?}",
            c.tcp
        );
        let udp: BTreeSet<&str> = c.udp.values().copied().collect();
        assert_eq!(udp.len(), 2, "{:?}", c.udp);
    }
    assert_eq!(own.tcp, kernel.tcp, "sh: by client address");
    assert_eq!(own.udp, kernel.udp, "mh: by client port");
}

/// The rows of `-Lnc` on director `i` of `p` in state ESTABLISHED,
/// without their remaining time.
fn established(p: &crate::ha::Pair, i: usize) -> BTreeSet<String> {
    p.adm(i, "-Lnc")
        .lines()
        .filter(|x| x.contains("ESTABLISHED"))
        .map(|x| {
            let mut f: Vec<&str> = x.split_whitespace().collect();
            f.remove(1);
            f.join(" ")
        })
        .collect()
}

/// Issue 29: the connections the tc program scheduled on the active
/// director reach the backup through the sync stream (each with its real
/// server and, from the program's report of the client's ACK, its
/// state), and after the active one is killed the long-lived ones go on
/// through the backup without a reset.
#[test]
fn kernel_scheduled_connections_reach_the_backup_and_survive_a_failover() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let tc: &[&str] = &["--io", "packet", "--offload"];
    let Some(mut p) = pair_with([tc, tc]) else {
        return;
    };
    sticks(&mut p, 5, 80);
    p.all_answered(50);
    let scheduled = p.counter(0, "kernel_scheduled");
    assert_eq!(scheduled, 55, "{}", p.logs());
    p.wait_b_synced(55);
    let both = || (established(&p, 0), established(&p, 1));
    wait_until(
        Duration::from_secs(5),
        || {
            let (a, b) = both();
            a.len() == 5 && a == b
        },
        || format!("A and B: {:?}", both()),
    );
    let rows = both();
    println!(
        "A scheduled {scheduled} in its program; B has {} connections, the 5 live ones as A \
         lists them:\n{}",
        p.counter(1, "conns"),
        rows.1.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    p.fail_over_quickly("kernel-scheduled connections");
    sticks_done(&mut p, 5, 80);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
    // New connections through B, scheduled by B's program.
    p.all_answered(20);
    let b = p.counter(1, "kernel_scheduled");
    println!("B's program scheduled {b} new connections after the failover");
    assert_eq!(b, 20);
}

/// Issue 29: `uvsadm -d` of the real server of a live UDP flow the tc
/// program scheduled: the sweep takes the flow back within about a
/// second, its frames stop going to the removed server and the rest go
/// to the remaining one (scheduled again), as do new flows.
#[test]
fn a_deleted_real_server_loses_its_kernel_scheduled_flow_within_a_second() {
    let Some(mut l) = tc_lab(&[
        &format!("oifname \"p-rs1\" ip daddr {VIP} udp dport 53"),
        &format!("oifname \"p-rs2\" ip daddr {VIP} udp dport 53"),
    ]) else {
        return;
    };
    let target = format!("{VIP}:53");
    // One flow of 4,000 datagrams, one a millisecond (about 4.5 s).
    let blast = [
        "udp-blast",
        "--target",
        &target,
        "--count",
        "4000",
        "--interval-ms",
        "1",
    ];
    l.client_bg(&blast, "blast.json");
    std::thread::sleep(Duration::from_millis(1000));
    let listing = l.adm("-Lnc");
    let row = listing
        .lines()
        .find(|x| x.starts_with("UDP"))
        .unwrap_or_else(|| panic!("no UDP flow: {listing}"));
    let dest = row.split_whitespace().nth(5).unwrap();
    let gone = server_name(dest);
    let (i, other) = if gone == "rs1" { (0, 1) } else { (1, 0) };
    assert_eq!(l.dp_counter("kernel_scheduled"), 1);
    let before = switch_counts(&l);
    l.adm(&format!(
        "-d -u {target} -r {}",
        dest.rsplit_once(':').unwrap().0
    ));
    let t0 = Instant::now();
    // The removed server's count stops: when it last moved.
    let (mut last, mut moved) = (before[i], Duration::ZERO);
    while t0.elapsed() < moved + Duration::from_millis(1000) {
        std::thread::sleep(Duration::from_millis(20));
        let now = switch_counts(&l)[i];
        if now != last {
            (last, moved) = (now, t0.elapsed());
        }
    }
    let sent = l.wait_child_logs("blast.json", Duration::from_secs(20))["sent"]
        .as_u64()
        .unwrap();
    let after = switch_counts(&l);
    let u = l.udp_names(20, 32000);
    let scheduled = l.dp_counter("kernel_scheduled");
    println!(
        "flow at {gone}: {} datagrams there before -d, {} after it (the last {} ms after); \
         {} to the other server; {sent} sent; new flows: {u}; kernel_scheduled {scheduled}",
        before[i],
        after[i] - before[i],
        moved.as_millis(),
        after[other],
    );
    assert!(
        moved < Duration::from_millis(1500),
        "{} ms",
        moved.as_millis()
    );
    assert!(
        after[other] > 1000,
        "the rest went to the other server: {after:?}"
    );
    // None lost on the way (one a millisecond), none dropped by uvs.
    assert!(after[0] + after[1] + 5 >= sent, "{after:?} of {sent}");
    let remaining = ["rs1", "rs2"][other];
    assert_eq!(count(&u, remaining), 20, "{u}");
    // The flow, its rest (scheduled again after the take-back: its uvs
    // entry had gone with it), the 20 new ones.
    assert_eq!(scheduled, 22);
    assert_eq!(l.dp_counter("kernel_refused"), 0);
}

/// Issue 29 on the XDP program (`--io xdp --offload --xdp-peer-program`,
/// a pass program on the switch's port so its XDP_TX reaches the
/// switch): new TCP
/// connections and UDP flows of an rr service are scheduled by the
/// program and reach both real servers.
#[test]
fn the_xdp_program_schedules_new_flows_too() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let args = [
        "--io",
        "xdp",
        "-i",
        "eth0",
        "--offload",
        "--xdp-peer-program",
    ];
    let Some(l) = xdp_forwarding_lab(Fam::V4, &args) else {
        return;
    };
    l.dr_services("rr", 1, 1);
    let t = l.tcp_names(100);
    let u = l.udp_names(100, 30000);
    let scheduled = l.dp_counter("kernel_scheduled");
    let rx = l.dp_counter_settled("rx_frames");
    println!("XDP: TCP {t}, UDP {u}: kernel_scheduled {scheduled}, rx_frames {rx}");
    for v in [&t, &u] {
        assert!(count(v, "rs1") >= 25 && count(v, "rs2") >= 25, "{v}");
        assert_eq!(count(v, "rs1") + count(v, "rs2"), 100, "{v}");
    }
    assert_eq!(scheduled, 200);
    assert_eq!(l.dp_counter("kernel_refused"), 0);
    // No connection's FIN comes up (the program reports it), nor any UDP
    // datagram.
    assert!(rx <= 100, "rx_frames {rx}");
}

/// Issue 29, a flood of new UDP flows past a small table: each flow the
/// program scheduled is entered and counted from its report; the
/// one-datagram ones make room for the next (evicted without a take-back),
/// a flow that sent twice was reported as seen and stays; an evicted flow
/// that sends again is still the program's, forwarded and entered again
/// from its report; and once the timers take every flow back, InPkts
/// counts each datagram the client sent exactly once.
#[test]
fn a_flood_past_a_small_table_evicts_one_datagram_flows_and_counts_every_datagram() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else {
        return;
    };
    l.start_servers(2);
    l.start_director_with(&[TC.as_slice(), &["--max-conns", "64"]].concat());
    l.dr_services("rr", 1, 1);
    // UDP flows end 8 s after their last datagram (taken back, counted).
    // A carried flow's frame goes up to uvs each quarter of that (its
    // timer runs on): the flood's first flow must send again within 2 s
    // of its first datagram for none to come up (at 4 s, a loaded CI
    // machine took over 1 s once).
    l.adm("--set 0 0 8");
    // The flow that stays: two datagrams from port 31000.
    for _ in 0..2 {
        assert!(l.udp_names(1, 31000)["error"].is_null());
    }
    let flood = l.udp_names(300, 32000);
    assert!(flood["error"].is_null(), "{flood}");
    l.wait_counter("kernel_scheduled", 301);
    let evicted = l.dp_counter("conn_evictions");
    assert!(evicted >= 301 - 64, "{evicted} evictions");
    let ports = udp_ports(&l);
    assert!(
        ports.contains(&31000),
        "the flow seen twice was evicted: {ports:?}"
    );
    assert!(
        !ports.contains(&32000),
        "the flood's first flow is still listed"
    );
    // The flood's first flow sends again: the program still carries it
    // (not scheduled anew, nothing up to uvs), and uvs enters it again
    // from the program's report.
    let rx = l.dp_counter("rx_frames");
    assert!(l.udp_names(1, 32000)["error"].is_null());
    wait_until(
        Duration::from_secs(3),
        || udp_ports(&l).contains(&32000),
        || format!("not entered again: {}", l.adm("-Lnc")),
    );
    assert_eq!(l.dp_counter("kernel_scheduled"), 301, "scheduled anew");
    assert_eq!(l.dp_counter("kernel_refused"), 0);
    assert_eq!(l.dp_counter("rx_frames"), rx, "a frame came up to uvs");
    // Every flow ends; what the program forwarded is folded in.
    wait_until(
        Duration::from_secs(15),
        || udp_ports(&l).is_empty(),
        || format!("still listed: {}", l.adm("-Lnc")),
    );
    let inpkts = l.service_stats("UDP")[1];
    assert_eq!(inpkts, 2 + 300 + 1, "each datagram counted once");
}

/// The client ports of the UDP connections `-Lnc` lists.
fn udp_ports(l: &Lab) -> BTreeSet<u16> {
    l.adm("-Lnc")
        .lines()
        .filter(|x| x.starts_with("UDP"))
        .filter_map(|x| {
            let from = x.split_whitespace().nth(3)?;
            from.rsplit_once(':')?.1.parse().ok()
        })
        .collect()
}

/// Issue 29: `--stats` follows a flow the program carries while it lives
/// (the program counts by real server and uvs reads it about once a
/// second), not only once the flow is taken back; and each frame counts
/// once: after the FIN, InPkts is what the client sent (within two, as
/// above).
#[test]
fn stats_follow_a_kernel_carried_flow_while_it_lives() {
    let Some(mut l) = tc_lab(&[&format!("iifname \"p-cl\" ip daddr {VIP} tcp dport 80")]) else {
        return;
    };
    // A message every 50 ms for 4 s, on one connection.
    l.stick_bg(80, 50, "stick.json");
    std::thread::sleep(Duration::from_millis(2500));
    let mid = l.service_stats("TCP")[1];
    let sent_mid = switch_counts(&l)[0];
    let rx = l.dp_counter("rx_frames");
    let stick = l.wait_child_logs("stick.json", Duration::from_secs(30));
    assert!(stick["error"].is_null(), "{stick}");
    println!("at 2.5 s: InPkts {mid} of {sent_mid} frames sent, uvs received {rx}");
    // Within about a second of the frames sent (one read a second).
    assert!(
        mid * 2 >= sent_mid && mid > rx + 10,
        "InPkts {mid} of {sent_mid}"
    );
    wait_until(
        Duration::from_secs(5),
        || l.service_stats("TCP")[1] + 2 >= switch_counts(&l)[0],
        || {
            format!(
                "InPkts {:?} of {:?}",
                l.service_stats("TCP"),
                switch_counts(&l)
            )
        },
    );
    let (got, sent) = (l.service_stats("TCP")[1], switch_counts(&l)[0]);
    assert!(got <= sent, "InPkts {got} of {sent}: counted twice");
}
