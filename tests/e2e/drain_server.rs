//! End-to-end: `uvs drain VIP:PORT RS` quiesces one real server and
//! waits until it carries no connection: 10 long-lived TCP connections
//! and a UDP flow on it end on their own (none is cut), no new connection
//! reaches it meanwhile, the drain exits 0 only after the last one, a
//! timeout exits 1, and `--remove` deletes the server.

use crate::support::{Lab, RS1, RS2, VIP, count, fixed_backend_run, holds, wait_until};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// ActiveConn of a real server of `proto` (`TCP`, `UDP`) VIP:`port`.
fn active(l: &Lab, proto: &str, port: u16, rs: &str) -> Option<u32> {
    let list = l.adm("-Ln");
    let mut in_svc = false;
    for line in list.lines() {
        if !line.starts_with("  ") {
            in_svc = line.starts_with(&format!("{proto}  {VIP}:{port}"));
        } else if in_svc && line.contains(&format!("-> {rs}:{port}")) {
            return line.split_whitespace().nth(4)?.parse().ok();
        }
    }
    None
}

fn drain(l: &Lab, args: &[&str]) -> Child {
    let socket = l.socket();
    let mut a = vec!["drain", "--socket", socket.to_str().unwrap()];
    a.extend_from_slice(args);
    l.cmd("dir", env!("CARGO_BIN_EXE_uvs"), &a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("uvs drain")
}

/// Waits for a drain to end: its exit, when, and its output.
fn finish(c: &mut Child, t0: Instant, limit: Duration) -> (bool, Duration, String) {
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            let at = t0.elapsed();
            let mut out = String::new();
            use std::io::Read;
            c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            c.stderr.take().unwrap().read_to_string(&mut out).unwrap();
            return (s.success(), at, out);
        }
        assert!(t0.elapsed() < limit, "uvs drain still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drain_waits_for_a_servers_last_connection_and_removes_it() {
    if !fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_serving(2) else {
        return;
    };
    l.adm("--set 0 0 2");
    for (p, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-A {p} {VIP}:{port} -s rr"));
        l.adm(&format!("-a {p} {VIP}:{port} -r {RS1} -g -w 1"));
        l.adm(&format!("-a {p} {VIP}:{port} -r {RS2} -g -w 0"));
    }
    // 10 connections on rs1 that end on their own over 1.2 to 4.8 s, and
    // a UDP flow (one source port) that sends for 2.4 s.
    let t0 = Instant::now();
    for i in 0..10 {
        l.stick_bg(3 + i, 400, &format!("stick{i}.json"));
    }
    let udp = {
        let (ns, tool) = (l.ns("cl"), crate::support::lab_tool());
        let target = format!("{VIP}:53");
        std::thread::spawn(move || {
            for _ in 0..9 {
                std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &ns,
                        &tool,
                        "udp-send",
                        "--bind",
                        "0.0.0.0:40053",
                    ])
                    .args(["--target", &target, "--hex", "4e414d450a"])
                    .output()
                    .unwrap();
                std::thread::sleep(Duration::from_millis(300));
            }
            Instant::now()
        })
    };
    wait_until(
        Duration::from_secs(3),
        || active(&l, "TCP", 80, RS1) == Some(10) && active(&l, "UDP", 53, RS1) == Some(1),
        || format!("not all on rs1 yet:\n{}", l.adm("-Ln")),
    );
    for (p, port) in [("-t", 80), ("-u", 53)] {
        l.adm(&format!("-e {p} {VIP}:{port} -r {RS2} -g -w 1"));
    }

    let started = t0.elapsed();
    let mut tcp = drain(&l, &[&format!("{VIP}:80"), RS1]);
    let mut udp_drain = drain(&l, &["-u", &format!("{VIP}:53"), RS1, "--remove"]);
    std::thread::sleep(Duration::from_millis(300));
    // Quiesced: new connections go to rs2 only.
    let t = l.tcp_names(10);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (0, 10), "{t}");
    let u = l.udp_names(5, 31000);
    assert_eq!((count(&u, "rs1"), count(&u, "rs2")), (0, 5), "{u}");

    let (ok, at, out) = finish(&mut tcp, t0, Duration::from_secs(12));
    assert!(ok, "{out}");
    holds(&out, "quiesced (weight 0)");
    holds(&out, "connection(s) left: ESTABLISHED");
    holds(&out, "drained:");
    // Not before the last connection ended, and none was cut.
    let mut last = Duration::ZERO;
    for i in 0..10u64 {
        let s = l.wait_child_logs(&format!("stick{i}.json"), Duration::from_secs(3));
        assert!(s["error"].is_null(), "stick {i} cut: {s}");
        assert_eq!(count(&s, "rs1"), 3 + i, "{s}");
        last = last.max(Duration::from_secs_f64(s["seconds"].as_f64().unwrap()));
    }
    assert!(
        at + Duration::from_millis(100) >= last,
        "{at:?} < {last:?}: {out}"
    );
    assert!(at > started + Duration::from_secs(3), "{at:?}");

    // The UDP flow held its drain until it stopped and its entry expired
    // (the UDP timeout, 2 s); then the server was removed.
    let udp_ended = udp.join().unwrap().duration_since(t0);
    let (ok, at, out) = finish(&mut udp_drain, t0, Duration::from_secs(12));
    assert!(ok, "{out}");
    holds(&out, "connection(s) left: UDP 1");
    assert!(
        at >= udp_ended + Duration::from_millis(1500),
        "{at:?} {udp_ended:?}: {out}"
    );
    holds(&out, &format!("removed {RS1}:53"));
    let list = l.adm("-Ln");
    assert!(active(&l, "UDP", 53, RS1).is_none(), "{list}");
    assert_eq!(active(&l, "TCP", 80, RS1), Some(0), "{list}");
    holds(&list, &format!("-> {RS1}:80               Route   0"));

    // A server whose connection outlives --timeout: exit 1, still listed.
    l.stick_bg(20, 200, "long.json");
    wait_until(
        Duration::from_secs(2),
        || active(&l, "TCP", 80, RS2) == Some(1),
        || l.adm("-Ln"),
    );
    let t1 = Instant::now();
    let mut c = drain(
        &l,
        &[&format!("{VIP}:80"), RS2, "--timeout", "1", "--remove"],
    );
    let (ok, at, out) = finish(&mut c, t1, Duration::from_secs(5));
    assert!(!ok, "{out}");
    assert!(at < Duration::from_secs(3), "{at:?}");
    holds(&out, "still carries 1 connection(s)");
    assert_eq!(active(&l, "TCP", 80, RS2), Some(1), "{}", l.adm("-Ln"));
    let s = l.wait_child_logs("long.json", Duration::from_secs(6));
    assert!(s["error"].is_null(), "{s}");
}
