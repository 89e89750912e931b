//! End-to-end with two data-plane workers (`--workers 2`): every frame of a
//! connection meets the worker that holds it, whichever way it travels
//! (DR requests; NAT requests and the real servers' replies), both workers
//! carry traffic, and the control plane's answers (listing, statistics,
//! counters) cover both. The same for IPv6 clients (DR and NAT66).

use crate::both_families;
use crate::support::holds;
use crate::support::{Fam, Lab, RS1, RS1_6, RS2, RS2_6, VIP6, count, tally2};
use std::collections::HashMap;
use std::time::Duration;

/// Connections in `uvsadm -Lnc`, keyed by protocol and client address and
/// port, with how often each appears and the real servers they went to.
fn listed(l: &Lab) -> HashMap<String, Vec<String>> {
    let mut by_client: HashMap<String, Vec<String>> = HashMap::new();
    for line in l.adm("-Lnc").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // pro expire state source virtual destination
        if f.len() == 6 && (f[0] == "TCP" || f[0] == "UDP") {
            let key = format!("{} {}", f[0], f[3]);
            by_client.entry(key).or_default().push(f[5].to_string());
        }
    }
    by_client
}

fn worker_frames(l: &Lab) -> (u64, u64) {
    (
        l.dp_counter("worker0_rx_frames"),
        l.dp_counter("worker1_rx_frames"),
    )
}

/// 200 UDP flows, then the same 200 again, each answered, each time by
/// the same servers: a datagram that met the other worker would be
/// scheduled there anew, a second entry for the same client in the
/// listing.
fn udp_twice(l: &Lab) {
    let first = l.udp_names(200, 24000);
    assert_eq!(first["errors"], 0, "{first}");
    let again = l.udp_names(200, 24000);
    assert_eq!(again["errors"], 0, "{again}");
    assert_eq!(
        (count(&again, "rs1"), count(&again, "rs2")),
        (count(&first, "rs1"), count(&first, "rs2")),
        "the same flows, the same servers: {first} {again}"
    );
}

/// What each worker carried: the frames it received, and the new flows
/// the kernel program scheduled and reported to it (the default path,
/// where most frames never come up).
fn worker_share(l: &Lab) -> (u64, u64) {
    let (f0, f1) = worker_frames(l);
    (
        f0 + l.dp_counter("worker0_kernel_scheduled"),
        f1 + l.dp_counter("worker1_kernel_scheduled"),
    )
}

#[test]
fn dr_every_connection_stays_on_one_worker_and_one_real_server() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director_with(&["--interface", "eth0", "--workers", "2"]);
    let log = l.log("director.log");
    holds(&log, "2 workers");
    l.dr_services("rr", 1, 1);

    udp_twice(&l);
    // Long TCP connections at once: one that met both workers would lose
    // its packets on the one without it and stall.
    for i in 0..6 {
        l.stick_bg(40, 5, &format!("stick{i}.json"));
    }
    let t = l.tcp_names(100);
    assert_eq!(t["errors"], 0, "{t}");
    l.sticks_on_one_server(6, 40);

    let conns = listed(&l);
    let udp: Vec<_> = conns.iter().filter(|(k, _)| k.starts_with("UDP")).collect();
    assert_eq!(udp.len(), 200, "each UDP flow listed: {conns:?}");
    for (client, dests) in &conns {
        assert_eq!(
            dests.len(),
            1,
            "{client} held by one worker only: {dests:?}"
        );
        let d = &dests[0];
        assert!(d.starts_with(RS1) || d.starts_with(RS2), "{client} -> {d}");
    }
    // Both workers carried traffic, and the statistics add them up.
    let (w0, w1) = worker_share(&l);
    assert!(w0 > 50 && w1 > 50, "frames and flows per worker: {w0} {w1}");
    let stats = l.adm("-Ln --stats --exact");
    let udp_line = stats.lines().find(|x| x.starts_with("UDP")).unwrap();
    assert_eq!(udp_line.split_whitespace().nth(2), Some("200"), "{stats}");
    let tcp_line = stats.lines().find(|x| x.starts_with("TCP")).unwrap();
    assert_eq!(tcp_line.split_whitespace().nth(2), Some("106"), "{stats}");
    assert_eq!(l.dp_counter("no_conn_dropped"), 0);
}

/// IPv6 clients are spread by the same hash (the address folded to 32
/// bits): DR to `[VIP6]` with many UDP flows, sent twice, and TCP
/// connections, short and long, each held by one worker.
#[test]
fn ipv6_dr_connections_stay_on_one_worker_and_both_workers_carry_them() {
    let Some(mut l) = Lab::up(2) else { return };
    let udp6 = format!("[{VIP6}]:53");
    for rs in ["rs1", "rs2"] {
        l.start_server_on(rs, &["--tcp", "80", "--udp", &udp6]);
    }
    l.start_director_with(&["--interface", "eth0", "--workers", "2"]);
    holds(&l.log("director.log"), "2 workers");
    for (o, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-A {o} [{VIP6}]:{port} -s rr"));
        for rs in [RS1_6, RS2_6] {
            l.adm(&format!("-a {o} [{VIP6}]:{port} -r {rs} -g -w 1"));
        }
    }
    let udp = |base: &str| {
        l.client(&[
            "udp-names",
            "--target",
            &udp6,
            "--count",
            "200",
            "--sport-base",
            base,
        ])
    };
    let first = udp("24000");
    let again = udp("24000");
    assert_eq!(first["errors"], 0, "{first}");
    assert_eq!(
        tally2(&again, "rs1", "rs2"),
        tally2(&first, "rs1", "rs2"),
        "the same flows, the same servers: {first} {again}"
    );
    let tcp = format!("[{VIP6}]:80");
    for i in 0..6 {
        l.stick_bg_to(&tcp, 40, 5, 3000, &format!("stick{i}.json"));
    }
    let t = l.client(&["tcp-names", "--target", &tcp, "--count", "100"]);
    // rr rotates within each worker: the split is near, not exactly, even.
    let (a, b, errors) = tally2(&t, "rs1", "rs2");
    assert_eq!((a + b, errors), (100, Some(0)), "{t}");
    l.sticks_on_one_server(6, 40);

    let conns = listed(&l);
    let udp_rows = conns.keys().filter(|k| k.starts_with("UDP")).count();
    assert_eq!(udp_rows, 200, "each UDP flow listed once: {conns:?}");
    for (client, dests) in &conns {
        assert_eq!(dests.len(), 1, "{client} held by one worker: {dests:?}");
        let d = &dests[0];
        assert!(d.contains(RS1_6) || d.contains(RS2_6), "{client} -> {d}");
    }
    let (w0, w1) = worker_share(&l);
    assert!(w0 > 50 && w1 > 50, "frames and flows per worker: {w0} {w1}");
    assert_eq!(l.dp_counter("no_conn_dropped"), 0);
}

both_families!(
    /// NAT with two workers: a real server's reply (to the client's
    /// address and port) meets the worker that translated the request,
    /// over IPv4 and over IPv6 (NAT66).
    nat_replies_reach_the_worker_that_holds_their_connection,
    |fam: Fam| {
        let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
            return;
        };
        l.fam = fam;
        let (any, nats) = match fam {
            Fam::V4 => ("0.0.0.0:5353", ["198.18.2.11", "198.18.2.12"]),
            Fam::V6 => ("[::]:5353", ["2001:2:0:2::11", "2001:2:0:2::12"]),
        };
        for n in ["nat1", "nat2"] {
            l.start_server_on(n, &["--tcp", "8080", "--udp", any]);
        }
        l.start_director_with(&["-i", "eth0", "-i", "eth1", "--workers", "2"]);
        let (v80, v53) = (fam.vip_at(80), fam.vip_at(53));
        l.adm(&format!("-A -t {v80} -s rr"));
        l.adm(&format!("-A -u {v53} -s rr"));
        for rs in nats {
            l.adm(&format!("-a -t {v80} -r {} -m", fam.at(rs, 8080)));
            l.adm(&format!("-a -u {v53} -r {} -m", fam.at(rs, 5353)));
        }
        // A reply that met the worker without its connection would go to
        // the kernel untranslated and be lost: every request must be
        // answered.
        let t = l.tcp_names(200);
        let (a, b, errors) = tally2(&t, "nat1", "nat2");
        assert_eq!((a + b, errors), (200, Some(0)), "{t}");
        let u = l.udp_names(200, 26000);
        let (a, b, errors) = tally2(&u, "nat1", "nat2");
        assert_eq!((a + b, errors), (200, Some(0)), "{u}");
        let (w0, w1) = worker_frames(&l);
        assert!(w0 > 100 && w1 > 100, "frames per worker: {w0} {w1}");
        assert!(l.dp_counter("nat_replies") >= 600, "replies translated");
        for (client, dests) in listed(&l) {
            assert_eq!(dests.len(), 1, "{client}: {dests:?}");
        }
    }
);

#[test]
fn more_workers_than_the_options_allow_are_refused_with_the_reason() {
    let Some(l) = Lab::up(1) else { return };
    let sock = l.socket();
    for (args, want) in [
        (vec!["--workers", "0"], "--workers must be between 1 and 64"),
        (
            vec!["--workers", "2", "--io", "xdp"],
            "AF_XDP takes one worker",
        ),
        (
            vec!["--workers", "4", "--max-conns", "3"],
            "less than one connection per worker",
        ),
    ] {
        let mut a = vec!["--interface", "eth0"];
        a.extend(args);
        let o = l.director_once(&a, &sock);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{a:?}: {err}");
    }
}

/// `--max-conns` is the director's limit, split among the workers: a
/// flood of one-packet UDP flows fills both shares, the oldest such
/// entries make room in each, and a long TCP connection and new ones
/// still work.
#[test]
fn the_table_limit_is_the_director_s_split_among_workers() {
    let Some(mut l) = Lab::up_dr(&["-i", "eth0", "--workers", "2", "--max-conns", "1000"]) else {
        return;
    };
    l.stick_bg(300, 10, "stick.json");
    std::thread::sleep(Duration::from_millis(300));
    let u = l.udp_names(3000, 30000);
    assert_eq!(count(&u, "rs1") + count(&u, "rs2"), 3000, "{u}");
    let evicted = l.dp_counter("conn_evictions");
    assert!(evicted >= 1900, "{evicted}");
    assert_eq!(l.dp_counter_settled("conns_limit"), 1000);
    let conns = l.dp_counter("conns");
    assert!(conns <= 1000 && conns > 800, "{conns}");
    assert_eq!(l.dp_counter("conn_table_full"), 0);
    let t = l.tcp_names(50);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), 50, "{t}");
    assert_eq!(l.stick_answered("stick.json"), 300);
}

/// Issue 29: two workers with the default flags keep the tc program. It
/// schedules the new flows itself and reports each to its worker's ring
/// (the fanout hash, so the worker its frames would reach): both workers
/// enter flows from their rings, each flow is listed once with the
/// server its frames went to, a flow's second datagram stays in the
/// kernel, and `--stats` counts every flow and every datagram.
#[test]
fn the_kernel_program_reports_each_flow_to_the_worker_that_holds_it() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director_with(&["--interface", "eth0", "--workers", "2"]);
    let log = l.log("director.log");
    holds(&log, "2 workers");
    holds(&log, "tc program");
    l.dr_services("rr", 1, 1);
    // UDP flows end 1 s after their last datagram, then are counted.
    l.adm("--set 0 0 1");
    udp_twice(&l);
    for i in 0..4 {
        l.stick_bg(20, 20, &format!("stick{i}.json"));
    }
    let t = l.tcp_names(100);
    assert_eq!(t["errors"], 0, "{t}");
    l.sticks_on_one_server(4, 20);
    let all = 200 + 100 + 4;
    l.wait_counter("kernel_scheduled", all);
    let per_worker = (
        l.dp_counter("worker0_kernel_scheduled"),
        l.dp_counter("worker1_kernel_scheduled"),
    );
    let rx = worker_frames(&l);
    println!("kernel_scheduled per worker {per_worker:?} of {all}; rx_frames per worker {rx:?}");
    assert_eq!(per_worker.0 + per_worker.1, all);
    assert!(per_worker.0 > 50 && per_worker.1 > 50, "{per_worker:?}");
    // Not one datagram came up (the second of each flow is the
    // program's too), nor most TCP frames.
    assert!(rx.0 + rx.1 < 100, "rx_frames per worker {rx:?}");
    let conns = listed(&l);
    let udp = conns.keys().filter(|k| k.starts_with("UDP")).count();
    assert_eq!(udp, 200, "each UDP flow listed: {conns:?}");
    for (client, dests) in &conns {
        assert_eq!(
            dests.len(),
            1,
            "{client} held by one worker only: {dests:?}"
        );
    }
    // Counted once each: flows by the worker they were reported to,
    // datagrams from the reports and the program's counts.
    std::thread::sleep(Duration::from_secs(3));
    let udp_stats = l.service_stats("UDP");
    assert_eq!((udp_stats[0], udp_stats[1]), (200, 400), "{udp_stats:?}");
    assert_eq!(l.service_stats("TCP")[0], 104);
    assert_eq!(l.dp_counter("kernel_refused"), 0);
}

/// Without `--workers` the count follows the machine: one worker per
/// receive queue of the director's link (a veth given two with `ethtool
/// -L`), at most one per CPU, said in the log; frames and the kernel
/// program's reports then spread over them as with `--workers`.
#[test]
fn the_worker_count_follows_the_link_s_queues_and_the_cpus() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let o = l.sh("dir", "ethtool -L eth0 rx 2 tx 2");
    assert!(o.status.success(), "{o:?}");
    l.start_director_with(&["--interface", "eth0"]);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let n = cpus.min(2);
    let log = l.log("director.log");
    holds(
        &log,
        &format!("workers: {n} (receive queues: eth0 2; {cpus} CPUs"),
    );
    if n < 2 {
        println!("one CPU: one worker");
        return;
    }
    holds(&log, "2 workers");
    l.dr_services("rr", 1, 1);
    let u = l.udp_names(200, 25000);
    assert_eq!(u["errors"], 0, "{u}");
    let (w0, w1) = worker_share(&l);
    assert!(w0 > 50 && w1 > 50, "frames and flows per worker: {w0} {w1}");
    assert_eq!(listed(&l).len(), 200);
}
