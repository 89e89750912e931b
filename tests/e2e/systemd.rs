//! uvs as systemd runs it, without systemd (PID 1 of the test machines is
//! not systemd; docs/systemd.md): the notify protocol on a socket of the
//! test's own (`READY=1` once traffic flows, `WATCHDOG=1`, `RELOADING=1`
//! and `READY=1` around a reload, `STOPPING=1` on SIGTERM), the JSON log,
//! the journal's datagrams on a socket of the test's own (in a mount
//! namespace of their own), and the director started with exactly the
//! unit's capabilities.

use crate::support::{Lab, RS1, RS2, VIP, count, wait_until};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The next notify message (its `KEY=VALUE` lines) within `wait`.
fn next(sock: &UnixDatagram, wait: Duration) -> Option<Vec<String>> {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// Waits (10 s at most) for a message with `line`, skipping watchdog
/// feeds; any other message before it fails the test.
fn expect(sock: &UnixDatagram, line: &str, log: impl Fn() -> String) -> Vec<String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let Some(m) = next(sock, Duration::from_secs(1)) else {
            continue;
        };
        if m.iter().any(|l| l == line) {
            return m;
        }
        assert_eq!(m, ["WATCHDOG=1"], "before {line}: {}", log());
    }
    panic!("no {line} within 10 s: {}", log());
}

fn config() -> String {
    format!(
        "[director]\ninterfaces = [\"eth0\"]\n\n\
         [[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         [[service.real_server]]\naddress = \"{RS1}\"\n\
         [[service.real_server]]\naddress = \"{RS2}\"\n"
    )
}

#[test]
fn notify_ready_watchdog_reload_and_stop() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, config()).unwrap();
    let notify = l.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let socket = l.socket();
    let env_notify = format!("NOTIFY_SOCKET={}", notify.display());
    let uvs = env!("CARGO_BIN_EXE_uvs");
    // A 4 s watchdog: fed every 2 s.
    let args = [
        &env_notify,
        "WATCHDOG_USEC=4000000",
        uvs,
        "director",
        "--socket",
        socket.to_str().unwrap(),
        "--config",
        path.to_str().unwrap(),
        "--log-format",
        "json",
    ];
    let pid = l.spawn("dir", "env", &args, "director.log");
    let log = || l.log("director.log");
    let ready = expect(&sock, "READY=1", log);
    assert!(
        ready.contains(&"STATUS=forwarding on eth0".into()),
        "{ready:?}"
    );
    // Traffic flows as soon as systemd is told so.
    let v = l.tcp_names(20);
    assert_eq!((count(&v, "rs1"), count(&v, "rs2")), (10, 10), "{v}");
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    // Fed while the (idle) data plane turns: two feeds within 5 s.
    let t = Instant::now();
    let mut feeds = 0;
    while t.elapsed() < Duration::from_secs(5) {
        if next(&sock, Duration::from_millis(500)).is_some_and(|m| m == ["WATCHDOG=1"]) {
            feeds += 1;
        }
    }
    assert!(feeds >= 2, "{feeds} watchdog feeds in 5 s: {}", log());
    // A reload: RELOADING=1 (with the monotonic time systemd 253 wants),
    // then READY=1 with the summary.
    std::fs::write(&path, config().replace("\"rr\"", "\"wrr\"")).unwrap();
    let o = l.exec(
        "dir",
        uvs,
        &["reload", "--socket", socket.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = expect(&sock, "RELOADING=1", log);
    assert!(r.iter().any(|x| x.starts_with("MONOTONIC_USEC=")), "{r:?}");
    let ready = expect(&sock, "READY=1", log);
    assert!(
        ready.iter().any(|x| x.starts_with("STATUS=reloaded")),
        "{ready:?}"
    );
    // SIGTERM: STOPPING=1.
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    expect(&sock, "STOPPING=1", log);
    // The log was JSON throughout: one object per line.
    wait_until(
        Duration::from_secs(5),
        || log().contains("\"message\":\"stopped\""),
        log,
    );
    for line in log().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for k in ["timestamp", "level", "target", "message"] {
            assert!(v.get(k).is_some(), "{k} missing: {line}");
        }
    }
    assert!(
        log().contains("systemd's watchdog: fed every 2000 ms"),
        "{}",
        log()
    );
}

/// A journal datagram's fields as `KEY=value` (the native protocol:
/// `KEY=value\n`, or `KEY\n`, a 64-bit little-endian length, the value
/// and `\n`).
fn fields(mut d: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(nl) = d.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&d[..nl]).into_owned();
        d = &d[nl + 1..];
        if line.contains('=') {
            out.push(line);
            continue;
        }
        let len = u64::from_le_bytes(d[..8].try_into().unwrap()) as usize;
        out.push(format!(
            "{line}={}",
            String::from_utf8_lossy(&d[8..8 + len])
        ));
        d = &d[8 + len + 1..];
    }
    out
}

/// The journal's datagrams, read where tracing-journald sends them
/// (/run/systemd/journal/socket), in a mount namespace of their own so
/// the host's /run is not touched: `uvs` run with `args`,
/// its stderr to a file and these environment variables; the datagrams
/// and the stderr.
fn journal_datagrams(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (Vec<String>, String) {
    let recv = dir.join("journal.sock");
    let _ = std::fs::remove_file(&recv);
    let sock = UnixDatagram::bind(&recv).unwrap();
    let err = dir.join("stderr");
    let f = std::fs::File::create(&err).unwrap();
    let script = "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && \
                  touch /run/systemd/journal/socket && \
                  mount --bind \"$0\" /run/systemd/journal/socket && exec \"$@\"";
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(&recv)
        .arg(env!("CARGO_BIN_EXE_uvs"))
        .args(args)
        .stderr(f);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("unshare");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = sock.recv(&mut buf) {
        got.extend(fields(&buf[..n]));
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    (got, std::fs::read_to_string(&err).unwrap())
}

/// `--log-format journal` sends each event to the journal with its level
/// as the priority; not given, stderr being the journal's stream
/// (`JOURNAL_STREAM`) chooses the journal too, and anything else text.
#[test]
fn logs_go_to_the_journal_with_their_levels() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    // A mount namespace needs root: skipped without it, failed under CI.
    if !Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare --mount fails under CI"
        );
        eprintln!("SKIPPED: no mount namespace here (run as root)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("uvs-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "director",
        "-i",
        "nosuch9",
        "--socket",
        "/run/uvs-test.sock",
    ];
    let mut given = args.to_vec();
    given.extend(["--log-format", "journal"]);
    let (got, stderr) = journal_datagrams(&dir, &given, &[]);
    let has = |got: &[String], f: &str| got.iter().any(|x| x == f);
    assert!(has(&got, "MESSAGE=no interface named 'nosuch9'"), "{got:?}");
    assert!(has(&got, "PRIORITY=3"), "an error is priority 3: {got:?}");
    assert!(has(&got, "SYSLOG_IDENTIFIER=uvs"), "{got:?}");
    assert_eq!(stderr, "");
    // Not given: stderr is the journal's stream when JOURNAL_STREAM says
    // so (the stderr file's own device and inode).
    let stream = || {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir.join("stderr")).unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let (got, _) = journal_datagrams(&dir, &args, &[("JOURNAL_STREAM", stream())]);
    assert!(has(&got, "MESSAGE=no interface named 'nosuch9'"), "{got:?}");
    let (got, stderr) = journal_datagrams(&dir, &args, &[("JOURNAL_STREAM", "1:2".into())]);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(stderr, "uvs: no interface named 'nosuch9'\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The unit's capabilities (its `CapabilityBoundingSet=` line) and
/// nothing else of root's: the director starts with the tc program
/// attached (`--io auto`) and with AF_XDP (`--io xdp`), and forwards.
#[test]
fn the_units_capabilities_are_enough() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/uvs.service"))
            .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding = format!("--bounding-set=-all,{}", caps.join(","));
    let wrapper = [
        "setpriv",
        &bounding,
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
    ];
    for (io, says) in [
        ("auto", "forwarded by the tc program"),
        ("xdp", "packet I/O: AF_XDP"),
    ] {
        let Some(mut l) = Lab::up(2) else { return };
        l.start_servers(2);
        let pid = l.start_director_as(&wrapper, &["-i", "eth0", "--io", io]);
        let log = l.log("director.log");
        assert!(log.contains(says), "--io {io}: {log}");
        // Its effective set is exactly the unit's.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let eff = status
            .lines()
            .find_map(|x| x.strip_prefix("CapEff:"))
            .map(|x| u64::from_str_radix(x.trim(), 16).unwrap());
        assert_eq!(eff, Some(UNIT_CAPS), "{status}");
        l.dr_services("rr", 1, 1);
        let v = l.tcp_names(10);
        assert_eq!(
            (count(&v, "rs1"), count(&v, "rs2")),
            (5, 5),
            "--io {io}: {v}"
        );
    }
}

/// CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_IPC_LOCK (14), CAP_PERFMON
/// (38), CAP_BPF (39), as /proc/PID/status shows a capability set.
const UNIT_CAPS: u64 = (1 << 12) | (1 << 13) | (1 << 14) | (1 << 38) | (1 << 39);
