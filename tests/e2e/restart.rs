//! End-to-end: a planned restart (`uvs director --takeover`) hands the
//! table and every connection to the new process; established
//! connections continue.

use crate::persist::{client_at, names, only_server, pinned_to};
use crate::support::holds;
use crate::support::{Lab, RS1, RS1_6, RS2, RS2_6, VIP, VIP6, wait_until};
use std::time::Duration;

/// Starts a second director with `--takeover` and these flags, on the
/// lab's socket; its log once it has taken over.
fn take_over(l: &mut Lab, extra: &[&str]) -> String {
    let sock = l.socket();
    let mut args = vec![
        "director",
        "-i",
        "eth0",
        "--socket",
        sock.to_str().unwrap(),
        "--takeover",
    ];
    args.extend_from_slice(extra);
    l.spawn("dir", env!("CARGO_BIN_EXE_uvs"), &args, "director2.log");
    wait_until(
        Duration::from_secs(10),
        || l.log("director2.log").contains("took over"),
        || l.log("director2.log"),
    );
    l.log("director2.log")
}

#[test]
fn a_planned_restart_keeps_every_connection() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let metrics = ["--metrics", "127.0.0.1:9647"];
    let old =
        l.start_director_with(&[&["-i", "eth0", "--max-conns", "5000"][..], &metrics].concat());
    l.dr_services("wrr", 1, 1);
    // 20 long-lived connections, one message every 100 ms, each answered.
    for i in 0..20 {
        l.stick_bg(60, 100, &format!("stick{i}.json"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let before = l.adm("-Lnc");
    assert!(
        before.lines().filter(|x| x.contains("ESTABLISHED")).count() >= 20,
        "{before}"
    );

    let log = take_over(&mut l, &[&["--max-conns", "5000"][..], &metrics].concat());
    let gap = log
        .lines()
        .find_map(|x| x.split("forwarding resumes ").nth(1))
        .and_then(|x| x.split(" ms").next())
        .and_then(|x| x.parse::<u64>().ok());
    println!("planned restart: forwarding resumed {gap:?} ms after the old director stopped");
    assert!(gap.is_some_and(|g| g < 2000), "{log}");
    // The old one stopped by itself, having handed everything over.
    wait_until(
        Duration::from_secs(5),
        || !(std::fs::read_dir(format!("/proc/{old}/fd")).is_ok_and(|d| d.count() > 0)),
        || "the old director still runs".into(),
    );
    l.assert_log("director.log", "handing");
    // The successor drives the link as the old one did: with AF_XDP the
    // old director's program went at the handoff, so the new one's
    // attached.
    let io = |log: &str| {
        log.lines()
            .find_map(|x| x.split("packet I/O: ").nth(1))
            .map(|x| x.split(' ').next().unwrap_or_default().to_string())
    };
    let (was, now) = (io(&l.log("director.log")), io(&log));
    assert!(was.is_some() && was == now, "{was:?} then {now:?}: {log}");
    // The new one answers with the same table.
    let listing = l.adm("-Ln");
    holds(&listing, &format!("TCP  {VIP}:80 wrr"));
    // And its metrics on the address the old one let go of.
    let url = "http://127.0.0.1:9647/metrics";
    let page = l.exec("dir", "curl", &["-sS", "--max-time", "5", url]);
    let page = String::from_utf8_lossy(&page.stdout);
    holds(&page, "uvs_service_connections_total{proto=\"TCP\"");

    l.sticks_on_one_server(20, 60);
    // The data plane's own line ("took over N of M connections") may
    // come a moment after the control plane's: read the log again.
    let log = l.log("director2.log");
    let took = log
        .lines()
        .find(|x| x.contains("took over") && x.contains("connections"))
        .unwrap_or_default()
        .to_string();
    println!("{took}");
    assert!(took.contains("took over"), "{log}");
}

/// A crash without handoff: the new director has no table of connections.
/// With sh the real server follows from the client's address, so an
/// established flow's next packet is scheduled to where it went and the
/// flow continues; with rr it cannot be derived again and the flow's
/// packets are dropped (`no_conn_dropped`) until the client gives up.
#[test]
fn after_a_crash_sh_flows_continue_where_their_server_can_be_derived() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"sh\"\n\
         [[service.real_server]]\naddress = \"198.18.0.11\"\n\
         [[service.real_server]]\naddress = \"198.18.0.12\"\n"
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    let old = l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    wait_until(
        Duration::from_secs(5),
        || l.adm("-Ln").contains("198.18.0.12:80"),
        || l.log("director.log"),
    );
    for i in 0..5 {
        l.stick_bg(40, 100, &format!("stick{i}.json"));
    }
    std::thread::sleep(Duration::from_millis(1000));
    std::process::Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .unwrap();
    let sock = l.socket();
    let args = [
        "director",
        "-i",
        "eth0",
        "--config",
        path.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
    ];
    // The crashed one's interface lock goes with its last thread.
    wait_until(
        Duration::from_secs(5),
        || {
            let o = l.exec("dir", "ss", &["-xl"]);
            !String::from_utf8_lossy(&o.stdout).contains("@uvs-director/")
        },
        || "the crashed director's lock stayed".into(),
    );
    l.spawn("dir", env!("CARGO_BIN_EXE_uvs"), &args, "director2.log");
    wait_until(
        Duration::from_secs(10),
        || l.log("director2.log").contains("uvs: loaded"),
        || l.log("director2.log"),
    );
    l.sticks_on_one_server(5, 40);
}

/// A takeover by a director started with the same config file: the table
/// comes from the old one (not applied twice), the checks run again, and
/// a reload after the takeover applies only what changed.
#[test]
fn a_takeover_with_a_config_file_keeps_checks_and_reloads() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_server("rs1");
    let rs2 = l.start_server("rs2");
    let cfg = |w: u32| {
        format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"wrr\"\n\
             [service.check]\ntype = \"tcp\"\ninterval = 0.2\ntimeout = 0.2\nfall = 2\n\
             [[service.real_server]]\naddress = \"198.18.0.11\"\nweight = {w}\n\
             [[service.real_server]]\naddress = \"198.18.0.12\"\n"
        )
    };
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg(1)).unwrap();
    let p = path.to_str().unwrap();
    l.start_director_with(&["-i", "eth0", "--config", p]);
    wait_until(
        Duration::from_secs(5),
        || l.log("director.log").contains("uvs: loaded"),
        || l.log("director.log"),
    );
    take_over(&mut l, &["--config", p]);
    let sock = l.socket();
    let listing = l.adm("-Ln");
    assert_eq!(listing.matches("198.18.0.11:80").count(), 1, "{listing}");
    // The new director's checks run: a dead server is quiesced.
    std::process::Command::new("kill")
        .arg(rs2.to_string())
        .status()
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        || {
            l.adm("-Ln")
                .contains("198.18.0.12:80               Route   0")
        },
        || format!("{}\n{}", l.adm("-Ln"), l.log("director2.log")),
    );
    // A reload applies the weight change only.
    std::fs::write(&path, cfg(4)).unwrap();
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["reload", "--socket", sock.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 change to the table"));
    assert!(
        l.adm("-Ln")
            .contains("198.18.0.11:80               Route   4"),
        "{}",
        l.adm("-Ln")
    );
}

/// A restart that adds workers (one, then two): each handed-over
/// connection goes to the worker that will see its frames, so every one
/// continues and none is held twice.
#[test]
fn a_restart_onto_two_workers_gives_each_connection_to_its_worker() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_dr(&["-i", "eth0", "--io", "packet"]) else {
        return;
    };
    for i in 0..16 {
        l.stick_bg(50, 100, &format!("stick{i}.json"));
    }
    std::thread::sleep(Duration::from_millis(1200));
    take_over(&mut l, &["--workers", "2"]);
    l.sticks_on_one_server(16, 50);
    let log = l.log("director2.log");
    let took: Vec<&str> = log
        .lines()
        .filter(|x| x.starts_with("uvs: took over ") && x.ends_with(" connections"))
        .collect();
    assert_eq!(took.len(), 2, "one line per worker: {log}");
    let listing = l.adm("-Lnc");
    let mut clients: Vec<&str> = listing
        .lines()
        .filter(|x| x.starts_with("TCP"))
        .filter_map(|x| x.split_whitespace().nth(3))
        .collect();
    let n = clients.len();
    clients.sort();
    clients.dedup();
    assert_eq!(clients.len(), n, "no connection held twice: {listing}");
    assert!(n >= 16, "{listing}");
    assert_eq!(l.status_counter("dir", &l.socket(), "no_conn_dropped"), 0);
}

/// Two real servers `rss` by DR behind TCP service `vip` (its address
/// and port) with `opts`, and a director on eth0.
fn dr_lab(vip: &str, opts: &str, rss: [&str; 2]) -> Option<Lab> {
    let mut l = Lab::up(2)?;
    l.start_servers(2);
    l.start_director_with(&["-i", "eth0"]);
    l.adm(&format!("-A -t {vip} {opts}"));
    for rs in rss {
        l.adm(&format!("-a -t {vip} -r {rs} -g -w 1"));
    }
    Some(l)
}

/// Issue 27, test 5: a planned restart keeps persistence. A client
/// pinned by its template keeps its real server for its next
/// connections through the new director, which got the template in the
/// handoff (templates first), while its rr, which starts afresh, sends a
/// new client to rr's first server.
#[test]
fn a_planned_restart_keeps_a_pinned_client_on_its_server() {
    let Some(mut l) = dr_lab(&format!("{VIP}:80"), "-s rr -p 120", [RS1, RS2]) else {
        return;
    };
    // A first client takes rr's first server; the client under test is
    // pinned to the other one.
    let first = client_at(&l, "198.18.0.30", 3);
    let pinned = only_server(&names(&l, 80, 10, None), 10);
    assert_ne!(first, pinned);
    let before = l.adm("-Lnc");
    assert!(pinned_to(&before, "198.18.0.10", pinned), "{before}");
    let log = take_over(&mut l, &[]);
    let after = l.adm("-Lnc");
    assert!(pinned_to(&after, "198.18.0.10", pinned), "{after}\n{log}");
    let again = names(&l, 80, 20, None);
    assert_eq!(only_server(&again, 20), pinned, "{again}");
    assert_eq!(client_at(&l, "198.18.0.20", 5), first);
}

/// Issue 28: a planned restart hands over IPv6 connections too: 10 long-lived connections to
/// `[VIP6]:80` are all taken over and continue on their real servers.
#[test]
fn a_planned_restart_keeps_ipv6_connections() {
    let Some(mut l) = dr_lab(&format!("[{VIP6}]:80"), "-s rr", [RS1_6, RS2_6]) else {
        return;
    };
    let target = format!("[{VIP6}]:80");
    for i in 0..10 {
        l.stick_bg_to(&target, 40, 100, 3000, &format!("stick{i}.json"));
    }
    std::thread::sleep(Duration::from_millis(1200));
    take_over(&mut l, &[]);
    l.sticks_on_one_server(10, 40);
    let log = l.log("director2.log");
    assert!(log.contains("took over 10 of 10 connections"), "{log}");
    assert_eq!(l.status_counter("dir", &l.socket(), "no_conn_dropped"), 0);
}
