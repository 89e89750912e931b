//! End-to-end: the director started from a config file, reloaded with
//! changes while connections run, and refusing bad files with their line
//! and column.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};

fn config(rs1_weight: u32, udp_both: bool, with_81: bool) -> String {
    let mut c = format!(
        "\u{feff}# flags win: the director is started with -i eth0\r\n\
         [director]\r\ninterfaces = [\"bogus9\"]\r\nmax_conns = 5000\r\n\r\n\
         [[service]]\r\nprotocol = \"tcp\"\r\naddress = \"{VIP}:80\"\r\nscheduler = \"wrr\"\r\n\
         [[service.real_server]]\r\naddress = \"{RS1}\"\r\nweight = {rs1_weight}\r\n\
         [[service.real_server]]\r\naddress = \"{RS2}\"\r\n\r\n\
         [[service]]\r\nprotocol = \"udp\"\r\naddress = \"{VIP}:53\"\r\nscheduler = \"rr\"\r\n\
         [[service.real_server]]\r\naddress = \"{RS1}\"\r\n"
    );
    if udp_both {
        c += &format!("[[service.real_server]]\r\naddress = \"{RS2}\"\r\n");
    }
    if with_81 {
        c += &format!(
            "\r\n[[service]]\r\nprotocol = \"tcp\"\r\naddress = \"{VIP}:81\"\r\n\
             [[service.real_server]]\r\naddress = \"{RS1}\"\r\n"
        );
    }
    c
}

fn reload(l: &Lab) -> std::process::Output {
    reload_with(l, &[])
}

/// `uvs reload` with these flags (`--force`, `--dry-run`).
fn reload_with(l: &Lab, flags: &[&str]) -> std::process::Output {
    let sock = l.socket();
    let mut args = vec!["reload", "--socket", sock.to_str().unwrap()];
    args.extend_from_slice(flags);
    l.exec("dir", env!("CARGO_BIN_EXE_uvs"), &args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn service_conns(l: &Lab, vport: u16) -> u64 {
    let stats = l.adm("-Ln --stats --exact");
    let line = stats
        .lines()
        .find(|x| x.starts_with("TCP") && x.contains(&format!("{VIP}:{vport}")))
        .unwrap_or_else(|| panic!("no TCP {vport} in {stats}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn start_from_a_file_reload_the_difference_refuse_bad_files() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let path = l.dir.join("uvs.toml");
    // A bad file stops the start, naming the place.
    std::fs::write(
        &path,
        config(1, false, true).replace("weight = 1", "wieght = 1"),
    )
    .unwrap();
    let o = l.director_once(
        &["-i", "eth0", "--config", path.to_str().unwrap()],
        &l.socket(),
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(e.contains("uvs.toml:12:1") && e.contains("wieght"), "{e}");

    std::fs::write(&path, config(1, false, true)).unwrap();
    let pid = l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    wait_until(
        Duration::from_secs(5),
        || l.log("director.log").contains("uvs: loaded"),
        || l.log("director.log"),
    );
    assert!(l.log("director.log").contains("up to 5000 entries"));
    let listing = l.adm("-Ln");
    holds(&listing, &format!("TCP  {VIP}:81"));
    let t = l.tcp_names(20);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t}");

    // A connection that runs across the reloads.
    l.stick_bg(400, 10, "stick.json");
    std::thread::sleep(Duration::from_millis(300));
    let conns_before = service_conns(&l, 80);

    // Weight changed, a server added, a service removed.
    std::fs::write(&path, config(3, true, false)).unwrap();
    let o = reload(&l);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = text(&o.stdout);
    holds(
        &out,
        "3 changes to the table (services: 0 added, 1 removed, 2 changed; real servers: \
             1 added, 1 removed, 1 changed)",
    );
    holds(
        &out,
        &format!("- TCP {VIP}:81: removed, with 1 real server"),
    );
    holds(&out, &format!("~ TCP {VIP}:80: 1 real server changed"));
    let listing = l.adm("-Ln");
    assert!(!listing.contains(&format!("{VIP}:81")), "{listing}");
    holds(&listing, &format!("{RS1}:80               Route   3"));
    let udp = l.adm(&format!("-Ln -u {VIP}:53"));
    holds(&udp, &format!("{RS2}:53"));
    assert!(service_conns(&l, 80) >= conns_before, "counters kept");

    // A bad file on reload changes nothing and says where.
    std::fs::write(
        &path,
        config(3, true, false).replace(&format!("\"{RS2}\""), "\"198.18.0.300\""),
    )
    .unwrap();
    let before = l.adm("-Ln");
    let o = reload(&l);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        e.contains("uvs.toml:14:11") && e.contains("198.18.0.300"),
        "{e}"
    );
    assert_eq!(l.adm("-Ln"), before);

    // SIGHUP reloads too.
    std::fs::write(&path, config(5, true, false)).unwrap();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    while !l
        .adm("-Ln")
        .contains(&format!("{RS1}:80               Route   5"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{}",
            l.log("director.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(l.log("director.log").contains("SIGHUP: reloaded"));

    // The running connection never noticed.
    assert_eq!(l.stick_answered("stick.json"), 400);
    // The new weights are in use for new connections.
    let t = l.tcp_names(60);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (50, 10), "{t}");
}

/// Defect 5: a director may start from an empty file, but a reload of a
/// file with no services (0 bytes, or cut before its first service)
/// where the file had some is refused, by `uvs reload`
/// and by SIGHUP, naming the file and `--force`; the table and a live
/// connection stay. A file cut at a service boundary is applied (its
/// summary shows the removals), `--dry-run` shows a reload without
/// applying it, and `--force` applies the empty file. A takeover with an
/// empty file while the running director has services is refused before
/// anything is handed over, and goes ahead with `--force`.
#[test]
fn an_empty_or_truncated_file_is_refused_unless_forced() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let path = l.dir.join("uvs.toml");
    // A plain start from an empty file is allowed (nothing runs yet);
    // services come with a reload.
    std::fs::write(&path, "").unwrap();
    let pid = l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let log = l.log("director.log");
    holds(&log, "has no services: the table starts empty");
    let full = config(1, false, true);
    std::fs::write(&path, &full).unwrap();
    let o = reload(&l);
    let out = text(&o.stdout);
    assert!(
        out.contains(
            "7 changes to the table (services: 3 added, 0 removed, 0 changed; real servers: \
             4 added, 0 removed, 0 changed)"
        ),
        "{out}{}",
        text(&o.stderr)
    );
    // A connection that must outlive the refused reloads.
    l.stick_bg(250, 10, "stick.json");
    std::thread::sleep(Duration::from_millis(200));
    let before = l.adm("-Ln");
    holds(&before, &format!("TCP  {VIP}:81"));

    let header = &full[..full.find("[[service]]").unwrap()];
    for (what, body) in [("0 bytes", ""), ("cut before the first service", header)] {
        std::fs::write(&path, body).unwrap();
        let o = reload(&l);
        assert!(!o.status.success(), "{what}");
        let e = text(&o.stderr);
        for want in [
            format!("{} has no services", path.display()),
            "would remove all 3 services the file had".into(),
            "Nothing changed".into(),
            "uvs reload --force".into(),
            "services: 0 added, 3 removed, 0 changed; real servers: 0 added, 4 removed".into(),
            format!("- TCP {VIP}:81: removed, with 1 real server"),
        ] {
            assert!(e.contains(&want), "{what}: no {want:?} in {e}");
        }
        assert_eq!(l.adm("-Ln"), before, "{what}");
    }
    // SIGHUP cannot force: refused and logged.
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        || l.log("director.log").contains("SIGHUP: reload refused"),
        || l.log("director.log"),
    );
    let log = l.log("director.log");
    holds(&log, "a SIGHUP cannot force it");
    assert_eq!(l.adm("-Ln"), before);

    // Cut at a service boundary: fewer services. A dry run shows it and
    // changes nothing; the reload applies it, saying what went.
    let cut = &full[..full.find("[[service]]\r\nprotocol = \"udp\"").unwrap()];
    std::fs::write(&path, cut).unwrap();
    let summary = "2 changes to the table (services: 0 added, 2 removed, 0 changed; real servers: \
                   0 added, 2 removed, 0 changed)";
    let o = reload_with(&l, &["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.starts_with("dry run, nothing applied"), "{out}");
    holds(&out, summary);
    assert_eq!(l.adm("-Ln"), before);
    // The same for scripts: --json.
    let o = reload_with(&l, &["--dry-run", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reload --json");
    assert_eq!(j["dry_run"], true, "{j}");
    assert_eq!(j["table_changes"], 2, "{j}");
    assert_eq!(j["services"]["removed"], 2, "{j}");
    assert_eq!(j["real_servers"]["removed"], 2, "{j}");
    assert_eq!(j["changed"][0]["change"], "removed", "{j}");
    assert_eq!(l.adm("-Ln"), before);
    let o = reload(&l);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    holds(&out, summary);
    holds(
        &out,
        &format!("- UDP {VIP}:53: removed, with 1 real server"),
    );
    let log = l.log("director.log");
    assert!(
        log.contains(&format!("uvs:   - UDP {VIP}:53: removed")),
        "logged before applying: {log}"
    );
    let listing = l.adm("-Ln");
    assert!(
        listing.contains(&format!("TCP  {VIP}:80")) && !listing.contains("UDP"),
        "{listing}"
    );
    // TCP 80 never changed: its connection ran through all of it.
    assert_eq!(l.stick_answered("stick.json"), 250);

    // Forced: the empty file applies, every service goes.
    std::fs::write(&path, "").unwrap();
    let o = reload_with(&l, &["--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    holds(
        &out,
        "services: 0 added, 1 removed, 0 changed; real servers: 0 added, 2 removed",
    );
    assert!(!l.adm("-Ln").contains("TCP"), "{}", l.adm("-Ln"));

    // A takeover from an empty file while the running director has
    // services (here from uvsadm) is refused; the director goes on.
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g"));
    let table = l.adm("-Ln");
    let cfg = path.to_str().unwrap();
    let o = l.director_once(&["-i", "eth0", "--config", cfg, "--takeover"], &l.socket());
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(
        e.contains("has no services, and the running director has 1 service (1 real server)")
            && e.contains("--force"),
        "{e}"
    );
    assert_eq!(l.adm("-Ln"), table, "the running director goes on");
    // Forced: the table is taken over as it is.
    let sock = l.socket();
    let args = [
        "director",
        "--socket",
        sock.to_str().unwrap(),
        "-i",
        "eth0",
        "--config",
        cfg,
        "--takeover",
        "--force",
    ];
    l.spawn("dir", env!("CARGO_BIN_EXE_uvs"), &args, "director2.log");
    wait_until(
        Duration::from_secs(10),
        || l.log("director2.log").contains("took over from pid"),
        || l.log("director2.log"),
    );
    assert_eq!(l.adm("-Ln"), table);
    let t = l.tcp_names(4);
    assert_eq!(count(&t, "rs1"), 4, "{t}");
}
