//! End-to-end hardening: the control socket's permissions and what may be
//! removed in its place, one director per interface, signals and links,
//! VIPs that belong to someone else, and a flood on one service.

use crate::support::holds;
use crate::support::{Lab, RS1, VIP, count, tally};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    crate::support::wait_until(timeout, f, || format!("timed out waiting for {what}"));
}

/// Whether a process has ended and let go of its files (a zombie not yet
/// reaped by the lab has none left; while its other threads are still
/// exiting, it still has some).
fn gone(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(true, |d| d.count() == 0)
}

/// Whether a director's interface lock (an abstract socket) is bound in
/// the director's namespace: a killed process lets go of it a moment
/// after it turns zombie.
fn lock_held(l: &Lab) -> bool {
    let o = l.exec("dir", "ss", &["-xl"]);
    String::from_utf8_lossy(&o.stdout).contains("@uvs-director/")
}

/// uvsadm against the daemon on `sock`, chosen by UVS_SOCKET.
fn uvsadm_at(sock: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uvsadm"))
        .args(args)
        .env("UVS_SOCKET", sock)
        .output()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn control_socket_permissions_and_the_files_it_may_replace() {
    let Some(mut l) = Lab::up(1) else { return };
    // A regular file where the socket should go is refused and kept.
    let file = l.dir.join("precious.sock");
    std::fs::write(&file, b"keep me").unwrap();
    let o = l.director_once(&["-i", "eth0"], &file);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not a socket"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // Under umask 000 the socket is 0600 from the moment it exists, in a
    // directory the daemon made 0700.
    let sock = l.dir.join("run").join("uvs.sock");
    let script = format!(
        "umask 000; exec {} director -i eth0 --socket {}",
        env!("CARGO_BIN_EXE_uvs"),
        sock.display()
    );
    let pid = l.spawn("dir", "sh", &["-c", &script], "director.log");
    let t = Instant::now();
    let meta = loop {
        if let Ok(m) = std::fs::symlink_metadata(&sock) {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            l.log("director.log")
        );
        std::thread::yield_now();
    };
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    // A second director on the same interface is refused, naming the first.
    // (Bounded by `timeout`: a director that wrongly starts would run on.)
    let second = l.dir.join("second.sock");
    let o = l.exec(
        "dir",
        "timeout",
        &[
            "10",
            env!("CARGO_BIN_EXE_uvs"),
            "director",
            "-i",
            "eth0",
            "--socket",
            second.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    holds(&e, "already driven by another uvs director");
    holds(&e, &format!("pid {pid}"));
    assert!(!l.dir.join("second.sock").exists());
    // The lock is per network namespace: the client's eth0 is another
    // interface, but the same socket path is a live daemon's and refused.
    let mut a = vec!["director", "-i", "eth0", "--socket"];
    a.push(sock.to_str().unwrap());
    let o = l.exec("cl", env!("CARGO_BIN_EXE_uvs"), &a);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another uvs daemon is already listening"),
        "{}",
        stderr(&o)
    );

    // SIGHUP is logged and ignored: the daemon keeps its table and socket.
    let adm = |args: &[&str]| uvsadm_at(&sock, args);
    assert!(adm(&["-A", "-u", &format!("{VIP}:53")]).status.success());
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_for("the SIGHUP log line", Duration::from_secs(5), || {
        l.log("director.log").contains("SIGHUP ignored")
    });
    let listing = adm(&["-Ln"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains(&format!("UDP  {VIP}:53")));

    // `uvs status` honours UVS_SOCKET and shows the table and its limit.
    let st = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("status")
        .env("UVS_SOCKET", &sock)
        .output()
        .unwrap();
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    for k in [
        "conns_limit",
        "conn_evictions",
        "rx_socket_drops",
        "icmp_rate_limited",
    ] {
        assert!(st.contains(k), "{k} missing: {st}");
    }
    holds(&st, &format!("conns_limit          {}", 1 << 20));

    // Killed without cleanup, it leaves a stale socket that the next start
    // replaces.
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    wait_for("the first director to end", Duration::from_secs(5), || {
        gone(pid) && !lock_held(&l)
    });
    assert!(sock.exists());
    let script = format!(
        "exec {} director -i eth0 --socket {}",
        env!("CARGO_BIN_EXE_uvs"),
        sock.display()
    );
    l.spawn("dir", "sh", &["-c", &script], "director2.log");
    wait_for("the restarted director", Duration::from_secs(10), || {
        adm(&["-Ln"]).status.success()
    });
}

#[test]
fn loopback_refused_down_links_waited_for_and_a_vanished_interface_ends_the_director() {
    let Some(mut l) = Lab::up(1) else { return };
    let o = l.director_once(&["-i", "lo"], &l.dir.join("lo.sock"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));

    // Started on a link that is down: it says so and waits.
    l.exec("dir", "ip", &["link", "set", "eth0", "down"]);
    let sock = l.socket();
    let args = ["director", "-i", "eth0", "--socket", sock.to_str().unwrap()];
    let pid = l.spawn("dir", env!("CARGO_BIN_EXE_uvs"), &args, "director.log");
    wait_for("the down-link warning", Duration::from_secs(5), || {
        l.log("director.log").contains("eth0 is down; waiting")
    });
    assert!(!sock.exists());
    l.exec("dir", "ip", &["link", "set", "eth0", "up"]);
    wait_for("the control socket", Duration::from_secs(10), || {
        sock.exists()
    });

    // Down and up while running are logged.
    l.exec("dir", "ip", &["link", "set", "eth0", "down"]);
    wait_for("the link-down line", Duration::from_secs(5), || {
        l.log("director.log").contains("eth0 went down")
    });
    l.exec("dir", "ip", &["link", "set", "eth0", "up"]);
    wait_for("the link-up line", Duration::from_secs(5), || {
        l.log("director.log").contains("eth0 is up again")
    });

    // The interface deleted: the director stops with the reason and an
    // error status, and removes its socket.
    l.exec("dir", "ip", &["link", "del", "eth0"]);
    wait_for("the director to stop", Duration::from_secs(5), || gone(pid));
    let log = l.log("director.log");
    holds(&log, "interface eth0 disappeared; stopping");
    assert!(!sock.exists());
}

#[test]
fn vips_that_belong_to_other_hosts_or_are_special_are_refused() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director();
    // The client's and a real server's addresses: another host answers
    // ARP for them, and the message names it.
    for (addr, node) in [("198.18.0.10", "cl"), (RS1, "rs1")] {
        let o = l.uvsadm(&["-A", "-t", &format!("{addr}:80"), "-s", "rr"]);
        assert!(!o.status.success(), "{addr} accepted");
        let e = stderr(&o);
        assert!(e.contains("is in use") && e.contains(&l.mac(node)), "{e}");
    }
    for addr in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "127.0.0.1",
        "198.18.0.0",
        "198.18.0.255",
    ] {
        let o = l.uvsadm(&["-A", "-t", &format!("{addr}:80"), "-s", "rr"]);
        assert!(!o.status.success(), "{addr} accepted");
        assert!(
            stderr(&o).contains("cannot be a VIP"),
            "{addr}: {}",
            stderr(&o)
        );
    }
    assert_eq!(l.adm("-Sn"), "");
    // Nothing was announced: the real server still reaches the client at
    // the client's own MAC.
    l.exec("rs1", "ping", &["-c1", "-W1", "198.18.0.10"]);
    let neigh = l.exec("rs1", "ip", &["neigh", "show", "198.18.0.10"]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    holds(&neigh, &l.mac("cl"));

    // A free VIP works as before.
    l.dr_services("rr", 1, 1);
    let t = l.tcp_names(20);
    assert_eq!(tally(&t, "rs1"), (10, Some(0)), "{t}");

    // A host that starts using the VIP is logged and counted; uvs does not
    // answer it with ARP of its own.
    l.exec(
        "cl",
        "ip",
        &["addr", "add", &format!("{VIP}/32"), "dev", "eth0"],
    );
    l.exec("cl", "ip", &["neigh", "flush", "dev", "eth0"]);
    l.exec("cl", "ping", &["-c1", "-W1", "-I", VIP, "198.18.0.12"]);
    wait_for("the conflict", Duration::from_secs(5), || {
        l.dp_counter("vip_conflicts") >= 1
    });
    let log = l.log("director.log");
    holds(&log, &format!("VIP {VIP} is claimed by {}", l.mac("cl")));
    l.exec(
        "cl",
        "ip",
        &["addr", "del", &format!("{VIP}/32"), "dev", "eth0"],
    );
}

/// The flood, through real namespaces: thousands of one-packet UDP
/// flows to one service (DR: the director never sees a reply) against a
/// table of 1,000, while a TCP connection runs; afterwards new
/// connections to the other service still work.
#[test]
fn a_udp_flood_does_not_lock_out_other_connections() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director_with(&["-i", "eth0", "--max-conns", "1000"]);
    l.assert_log("director.log", "up to 1000 entries");
    l.dr_services("rr", 1, 1);
    l.stick_bg(300, 10, "stick.json");
    std::thread::sleep(Duration::from_millis(300));
    let u = l.udp_names(3000, 20000);
    assert_eq!(count(&u, "rs1") + count(&u, "rs2"), 3000, "{u}");
    assert!(
        l.dp_counter("conn_evictions") >= 1900,
        "{}",
        l.dp_counter("conn_evictions")
    );
    assert!(l.dp_counter("conns") <= 1000);
    assert_eq!(l.dp_counter("conn_table_full"), 0);
    let t = l.tcp_names(50);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), 50, "{t}");
    assert_eq!(l.stick_answered("stick.json"), 300);
    // The listing streams in chunks and shows at most the limit.
    let listing = l.adm("-Lnc");
    let lines = listing.lines().count() - 2;
    assert!(lines <= 1000 && lines > 100, "{lines}");
}

/// Idle control clients are dropped after the idle timeout, clients past
/// the cap are told so at once, and running out of descriptors backs off
/// with one log line instead of hundreds.
#[test]
fn control_socket_caps_clients_times_out_idle_ones_and_backs_off() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let Some(mut l) = Lab::up(1) else { return };
    l.start_director();
    let sock = l.socket();
    let mut idle: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The ones past the cap got an answer right away.
    let mut told = 0;
    for s in &mut idle[32..] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = String::new();
        let _ = s.read_to_string(&mut b);
        told += usize::from(b.contains("control clients already"));
    }
    assert_eq!(told, 8);
    // The idle ones are closed after the idle timeout (5 s).
    let t = Instant::now();
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = Vec::new();
    assert_eq!(idle[0].read_to_end(&mut b).unwrap(), 0);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(l.uvsadm(&["-Ln"]).status.success());
    drop(idle);

    // Under a low descriptor limit, accept fails; it is logged once and
    // the daemon recovers when the idle clients are dropped.
    let sock2 = l.dir.join("low.sock");
    let script = format!(
        // AF_PACKET: the descriptors AF_XDP's maps and sockets take would
        // leave no room under this limit for the clients.
        "ulimit -n 40; exec {} director -i eth0 --io packet --socket {}",
        env!("CARGO_BIN_EXE_uvs"),
        sock2.display()
    );
    // The first director holds eth0's lock: stop it first.
    l.uvsadm(&["-C"]);
    let first = l.exec("dir", "pgrep", &["-f", l.socket().to_str().unwrap()]);
    let first = String::from_utf8_lossy(&first.stdout).trim().to_string();
    Command::new("kill").arg(&first).status().unwrap();
    wait_for("the first director to stop", Duration::from_secs(5), || {
        !lock_held(&l)
    });
    l.spawn("dir", "sh", &["-c", &script], "low.log");
    wait_for("the second director", Duration::from_secs(10), || {
        sock2.exists()
    });
    let many: Vec<UnixStream> = (0..60)
        .filter_map(|_| UnixStream::connect(&sock2).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let log = l.log("low.log");
    let failed = log.matches("accept failed").count();
    assert!((1..=2).contains(&failed), "{log}");
    drop(many);
    let adm = |args: &[&str]| uvsadm_at(&sock2, args);
    let t = Instant::now();
    loop {
        let o = adm(&["-Ln"]);
        if o.status.success() {
            break;
        }
        let log = l.log("low.log");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{log} {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = l.log("low.log");
    assert!(log.matches("accept failed").count() <= 2, "{log}");
}

/// Frames the packet socket drops before uvs reads them are shown: the
/// director is stopped (SIGSTOP) while a burst arrives, so its receive
/// queue overflows.
#[test]
fn packet_socket_drops_are_shown_in_status() {
    let Some(mut l) = Lab::up(1) else { return };
    l.start_servers(1);
    // uvs's own sockets: by default the tc program would forward the
    // burst's flow itself.
    let io = Lab::own_path_io();
    let pid = l.start_director_with(&["--io", &io, "-i", "eth0"]);
    l.adm(&format!("-A -u {VIP}:53 -s rr"));
    l.adm(&format!("-a -u {VIP}:53 -r {RS1} -g"));
    assert_eq!(l.dp_counter("rx_socket_drops"), 0);
    assert_eq!(count(&l.udp_names(5, 30000), "rs1"), 5);
    // A stopped director answers no ARP: the client is given the VIP's
    // MAC for good, or its sends would wait on neighbour resolution.
    let mac = l.mac("dir");
    let neigh = [
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ];
    let o = l.exec("cl", "ip", &neigh);
    assert!(o.status.success(), "{mac}: {}", stderr(&o));
    Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    let target = format!("{VIP}:53");
    let sent = l.client(&["udp-blast", "--target", &target, "--count", "200000"]);
    Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent["sent"].as_u64().unwrap() > 100_000, "{sent}");
    wait_for("the drops to show", Duration::from_secs(5), || {
        l.dp_counter("rx_socket_drops") > 0
    });
}
