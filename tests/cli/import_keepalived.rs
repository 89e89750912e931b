//! `uvs import-keepalived` on keepalived.conf files in the shapes of
//! keepalived's samples (proved valid keepalived input with `keepalived
//! -t`); the imported config driving real traffic is in the end-to-end
//! tests (tests/e2e/keepalived.rs).

use crate::keepalived::{import, import_valid, keepalived_accepts};
use crate::text::holds;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use uvs::lvs::service::Forward;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived/keepalived.conf")
}

#[test]
fn the_sample_shapes_import_with_a_warning_for_each_option_left_out() {
    let (out, err) = import_valid(&fixture());
    let c = uvs::config::parse(Path::new("imported.toml"), out.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    let keys: Vec<String> = c
        .services
        .iter()
        .map(|s| {
            format!(
                "{} {}:{}",
                s.def.key.protocol.name(),
                s.def.key.addr,
                s.def.key.port
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            "TCP 198.18.0.100:80",
            "UDP 198.18.0.100:53",
            "UDP 198.18.0.101:53",
            "TCP 198.18.0.100:443"
        ]
    );
    let web = &c.services[0];
    assert_eq!(web.def.scheduler, "wrr");
    // persistence_timeout is carried over now (issue 27), not warned away.
    assert_eq!(web.def.persistent.map(|p| p.timeout), Some(50));
    assert!(!err.contains("keepalived.conf:27:"), "{err}");
    // keepalived removes a failed server unless inhibit_on_failure.
    assert_eq!(web.on_failure, uvs::control::model::FailAction::Remove);
    let tcp = web.real_servers[0].check.as_ref().unwrap();
    // keepalived's detection: down after the check and its 2 retries,
    // delay_before_retry apart, failed.
    assert_eq!(
        (tcp.kind_name(), tcp.fall, tcp.interval),
        ("TCP", 1, Duration::from_secs(1))
    );
    assert_eq!((tcp.retry, tcp.retry_delay), (2, Duration::from_secs(1)));
    assert!(!err.contains("delay_before_retry"), "{err}");
    let http = web.real_servers[1].check.as_ref().unwrap();
    assert_eq!((http.kind_name(), http.port), ("HTTP", Some(8080)));
    let dns = &c.services[1];
    assert_eq!(dns.on_failure, uvs::control::model::FailAction::Quiesce);
    assert_eq!(dns.real_servers[0].forward, Forward::Masq);
    assert_eq!(dns.real_servers[0].port, 5353);
    assert_eq!(
        dns.real_servers[0].check.as_ref().unwrap().kind_name(),
        "exec"
    );
    assert_eq!(dns.quorum.sorry.as_ref().map(|r| r.port), Some(53));
    assert_eq!(c.services[3].real_servers[0].forward, Forward::Tunnel);
    assert!(c.services[3].real_servers[0].check.is_none());
    for (at, what) in [
        ("keepalived.conf:4:", "global_defs"),
        ("keepalived.conf:11:", "vrrp_instance"),
        ("keepalived.conf:44:", "second url"),
        ("dns.conf:27:", "firewall-mark"),
        ("dns.conf:36:", "lb_algo `lblc`"),
        ("dns.conf:40:", "SSL_GET"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(at) && l.contains(what)),
            "no warning {at} {what}:\n{err}"
        );
    }
}

#[test]
fn includes_that_match_nothing_are_fine_and_broken_files_are_not() {
    let d = std::env::temp_dir().join(format!("uvs-ka-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("k.conf");
    std::fs::write(
        &f,
        "include nothing/*.conf\nvirtual_server 198.18.0.100 80 {\n  lb_kind DR\n  real_server 198.18.0.11 80 {\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = import(&f);
    assert_eq!(code, 0, "{err}");
    holds(&out, "198.18.0.11");
    std::fs::write(&f, "virtual_server 198.18.0.100 80 {\n").unwrap();
    let (code, _, err) = import(&f);
    assert_eq!(code, 1);
    assert!(
        err.contains("k.conf:1") && err.contains("never closed"),
        "{err}"
    );
    let (code, _, err) = import(&d.join("absent.conf"));
    assert_eq!(code, 1);
    holds(&err, "cannot read");
    std::fs::remove_dir_all(&d).unwrap();
}

/// A directory of the test's own.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uvs-ka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `import` that must end within `limit` (an include of a device or a
/// FIFO must not hang the import or fill its memory).
fn import_within(path: &Path, limit: Duration) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("import-keepalived")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("the import of {} took more than {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A scratch directory with `text` in its `k.conf`; both paths.
fn k_conf(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let d = scratch(name);
    let f = d.join("k.conf");
    std::fs::write(&f, text).unwrap();
    (d, f)
}

fn has(err: &str, at: &str, what: &str) -> bool {
    err.lines().any(|l| l.contains(at) && l.contains(what))
}

/// Blocks on one line, several on a line, a `}` after a value and a `{`
/// on the next line: keepalived reads each as the multi-line form, and
/// so does the import.
#[test]
fn one_line_blocks_import_as_their_multi_line_form() {
    let d = scratch("one-line");
    let multi = d.join("multi.conf");
    std::fs::write(
        &multi,
        "virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n  lb_algo wrr\n\
         \n  real_server 198.18.0.11 80 {\n    weight 3\n    HTTP_GET {\n      url {\n        path /health\n\
                 status_code 200 204\n      }\n      connect_timeout 2\n    }\n  }\
         \n  real_server 198.18.0.12 80 {\n    weight 1\n    TCP_CHECK {\n      connect_port 8080\n    }\n  }\n}\n\
         virtual_server 198.18.0.100 53 {\n  protocol UDP\n  lb_kind NAT\n  lb_algo rr\n\
         \n  real_server 198.18.2.11 5353 {\n    weight 2\n  }\n}\n",
    )
    .unwrap();
    let one = d.join("one.conf");
    std::fs::write(
        &one,
        "virtual_server 198.18.0.100 80 { protocol TCP\n  lb_kind DR\n  lb_algo wrr\n\
         real_server 198.18.0.11 80 { weight 3\n HTTP_GET { url { path /health\n status_code 200 204 }\n\
         connect_timeout 2 } } real_server 198.18.0.12 80 { weight 1\n TCP_CHECK{connect_port 8080}}}\n\
         virtual_server 198.18.0.100 53\n{\n  protocol UDP\n  lb_kind NAT\n  lb_algo rr\n  real_server 198.18.2.11 5353\n  {\n weight 2 } }\n",
    )
    .unwrap();
    for f in [&multi, &one] {
        assert_ne!(
            keepalived_accepts(f),
            Some(false),
            "{} is not valid keepalived input",
            f.display()
        );
    }
    let (code, multi_out, err) = import(&multi);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let (code, one_out, err) = import(&one);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let a = uvs::config::parse(Path::new("multi.toml"), multi_out.as_bytes()).unwrap();
    let b = uvs::config::parse(Path::new("one.toml"), one_out.as_bytes()).unwrap();
    assert_eq!(a, b, "{multi_out}\n{one_out}");
    let http = a.services[0].real_servers[0].check.as_ref().unwrap();
    assert_eq!(http.kind_name(), "HTTP");
    assert!(
        one_out.contains("path = \"/health\"") && one_out.contains("status = [\"200\", \"204\"]"),
        "{one_out}"
    );
    assert_eq!(
        a.services[0].real_servers[1].check.as_ref().unwrap().port,
        Some(8080)
    );
    assert_eq!(
        (
            a.services[1].real_servers[0].port,
            a.services[1].real_servers[0].weight
        ),
        (5353, 2)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// keepalived ends a statement only at a brace or a line end: `weight 3
/// HTTP_GET {` is one statement, which keepalived refuses, and so does
/// the import, naming the line; `path / status_code 200` is path `/`
/// (keepalived ignores the rest without a word), which the import says.
#[test]
fn words_after_a_value_on_one_line_get_their_message() {
    let (d, f) = k_conf(
        "same-line",
        "virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n  lb_algo rr\n\
         real_server 198.18.0.11 80 { weight 3 HTTP_GET { url { path / } } }\n}\n",
    );
    assert_ne!(keepalived_accepts(&f), Some(true), "keepalived took it");
    let (code, out, err) = import(&f);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        has(&err, "k.conf:5:", "write HTTP_GET on a line of its own"),
        "{err}"
    );
    std::fs::write(
        &f,
        "virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n  lb_algo rr\n\
         real_server 198.18.0.11 80 {\n HTTP_GET {\n url { path / status_code 500 }\n } }\n}\n",
    )
    .unwrap();
    assert_ne!(keepalived_accepts(&f), Some(false), "keepalived refused it");
    let (code, out, err) = import(&f);
    assert_eq!(code, 0, "{err}");
    assert!(
        has(&err, "k.conf:7:", "`path` takes one value")
            && has(&err, "k.conf:7:", "(`status_code 500`)"),
        "{err}"
    );
    assert!(
        out.contains("path = \"/\"") && !out.contains("status"),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// A file that is not keepalived config (here one shaped like
/// /etc/shadow) is named with its line numbers, never shown: not when it
/// is included (at the top or inside a block), not when it is the file
/// given.
#[test]
fn a_file_that_is_not_config_is_named_never_shown() {
    let d = scratch("secret");
    let secret = d.join("shadow");
    let hash = "$6$S3cretSa1t$Xq9vZp0rRk4mW2yT7uQ1sE8bN5cV3aL6hJ0gF9dS2kP";
    std::fs::write(
        &secret,
        format!(
            "root:{hash}:19000:0:99999:7:::\nhunter2-the-password\n\napi_token = TOPSECRET-42\n"
        ),
    )
    .unwrap();
    let f = d.join("k.conf");
    std::fs::write(
        &f,
        format!(
            "include {}\nvirtual_server 198.18.0.100 80 {{\n  protocol TCP\n  lb_kind DR\n  include shadow\n\
             real_server 198.18.0.11 80 {{\n  }}\n}}\n",
            secret.display()
        ),
    )
    .unwrap();
    let secrets = [
        hash,
        "S3cretSa1t",
        "hunter2",
        "TOPSECRET",
        "api_token",
        "root:",
    ];
    let none_shown = |out: &str, err: &str| {
        for s in secrets {
            assert!(
                !out.contains(s) && !err.contains(s),
                "{s} shown:\n{out}\n{err}"
            );
        }
    };
    let (code, out, err) = import(&f);
    assert_eq!(code, 0, "{err}");
    none_shown(&out, &err);
    for at in ["k.conf:1:", "k.conf:5:"] {
        assert!(has(&err, at, "shadow is not keepalived config"), "{err}");
        assert!(has(&err, at, "(lines 1, 2, 4)"), "{err}");
    }
    holds(&out, "198.18.0.11");
    let (code, out, err) = import(&secret);
    assert_eq!(code, 1, "{err}");
    none_shown(&out, &err);
    assert!(has(&err, "shadow:", "lines 1, 2, 4"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `/dev/zero`, a FIFO without a writer and a directory are skipped at
/// once with a warning naming them and the include's line, as keepalived
/// skips them; given as the file, they are errors. A file over the size
/// limit and a file that includes itself are errors too.
#[test]
fn devices_fifos_directories_and_loops_end_quickly_with_their_message() {
    let d = scratch("devices");
    let fifo = d.join("fifo.conf");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir(d.join("dir.conf")).unwrap();
    let f = d.join("k.conf");
    std::fs::write(
        &f,
        "include /dev/zero\ninclude fifo.conf\ninclude dir.conf\n\
         virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n  real_server 198.18.0.11 80 {\n  }\n}\n",
    )
    .unwrap();
    let limit = Duration::from_secs(10);
    let (code, out, err) = import_within(&f, limit);
    assert_eq!(code, 0, "{err}");
    holds(&out, "198.18.0.11");
    for (at, what) in [
        ("k.conf:1:", "/dev/zero is a character device"),
        ("k.conf:2:", "fifo.conf is a FIFO"),
        ("k.conf:3:", "dir.conf is a directory"),
    ] {
        assert!(has(&err, at, what), "no {at} {what}:\n{err}");
    }
    for (file, what) in [
        (Path::new("/dev/zero"), "a character device"),
        (fifo.as_path(), "a FIFO"),
    ] {
        let (code, _, err) = import_within(file, limit);
        assert_eq!(code, 1, "{err}");
        holds(&err, what);
    }
    let big = d.join("big.conf");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(64 << 20).unwrap();
    std::fs::write(&f, "virtual_server_group G {\n}\ninclude big.conf\n").unwrap();
    let (code, _, err) = import_within(&f, limit);
    assert_eq!(code, 1, "{err}");
    assert!(has(&err, "k.conf:3:", "big.conf: larger than"), "{err}");
    std::fs::write(&f, "global_defs {\n}\ninclude k.conf\n").unwrap();
    let (code, _, err) = import_within(&f, limit);
    assert_eq!(code, 1, "{err}");
    assert!(has(&err, "k.conf:3:", "includes itself"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// What the director would refuse is an error at import, each with its
/// line, and then no config is printed: duplicate virtual servers (by
/// address or by group member, and firewall marks), duplicate real
/// servers (DR takes the service's port, so two ports of one address are
/// one server), ports out of range, 0.0.0.0 and port 0, a real server
/// that is a VIP.
#[test]
fn duplicates_and_out_of_range_values_are_errors_with_their_lines() {
    let (d, f) = k_conf(
        "dups",
        "virtual_server_group G {\n  198.18.0.100 80\n  198.18.0.102 80\n}\n\
         virtual_server 198.18.0.100 80 {\n  protocol TCP\n  lb_kind DR\n\
           real_server 198.18.0.11 80 {\n  }\n  real_server 198.18.0.11 8080 {\n  }\n}\n\
         virtual_server group G {\n  protocol TCP\n  lb_kind DR\n}\n\
         virtual_server 198.18.0.101 99999 {\n  protocol TCP\n  lb_kind DR\n}\n\
         virtual_server 0.0.0.0 0 {\n  protocol TCP\n  lb_kind DR\n}\n\
         virtual_server 198.18.0.103 80 {\n  protocol UDP\n  lb_kind NAT\n\
           real_server 198.18.2.11 65536 {\n  }\n  real_server 0.0.0.0 53 {\n  }\n\
           real_server 198.18.0.102 53 {\n  }\n  real_server 198.18.2.12 {\n  }\n  real_server 198.18.2.12 80 {\n  }\n}\n\
         virtual_server fwmark 7 {\n}\nvirtual_server fwmark 7 {\n}\n",
    );
    let (code, out, err) = import(&f);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    for (at, what) in [
        (
            "k.conf:2:",
            "TCP 198.18.0.100:80 is defined twice (first at",
        ),
        ("k.conf:10:", "real server 198.18.0.11:80 is listed twice"),
        ("k.conf:17:", "port `99999` is not a port"),
        ("k.conf:21:", "port 0"),
        ("k.conf:21:", "0.0.0.0 cannot be a VIP"),
        ("k.conf:28:", "port `65536` is not a port"),
        ("k.conf:30:", "0.0.0.0 cannot be a real server"),
        (
            "k.conf:32:",
            "198.18.0.102 is also a virtual server's address",
        ),
        ("k.conf:36:", "real server 198.18.2.12:80 is listed twice"),
        ("k.conf:41:", "fwmark 7 is defined twice"),
    ] {
        assert!(has(&err, at, what), "no {at} {what}:\n{err}");
    }
    holds(&err, "10 errors; no config printed");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `lb_algo mh|sed|nq|dh|fo|ovf` and the flag keywords convert; a flag
/// for another scheduler is left out with a warning, as keepalived does.
#[test]
fn new_schedulers_and_their_flags_import() {
    let mut text = String::new();
    for (i, (algo, flags)) in [
        ("mh", "mh-port\n  mh-fallback"),
        ("sh", "sh-port\n  flag-1"),
        ("sed", "mh-port"),
        ("nq", ""),
        ("dh", ""),
        ("fo", ""),
        ("ovf", "flag-3"),
    ]
    .iter()
    .enumerate()
    {
        text += &format!(
            "virtual_server 198.18.0.100 {} {{\n  protocol TCP\n  lb_kind DR\n  lb_algo {algo}\n  {flags}\n\
             \n  real_server 198.18.0.11 {0} {{\n    weight 1\n  }}\n}}\n",
            80 + i
        );
    }
    let (_, conf) = k_conf("sched", &text);
    let (code, out, err) = import(&conf);
    assert_eq!(code, 0, "{err}");
    let c = uvs::config::parse(Path::new("sched.toml"), out.as_bytes()).unwrap();
    let got: Vec<(&str, String)> = c
        .services
        .iter()
        .map(|s| {
            let kind = uvs::lvs::service::SchedulerKind::from_name(&s.def.scheduler);
            (s.def.scheduler.as_str(), s.def.flags.names(kind))
        })
        .collect();
    let want = [
        ("mh", "mh-fallback,mh-port"),
        ("sh", "sh-fallback,sh-port"),
        ("sed", ""),
        ("nq", ""),
        ("dh", ""),
        ("fo", ""),
        ("ovf", "flag-3"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a, b.to_string())), "{out}");
    holds(&err, "mh-port only applies to the mh scheduler");
    assert!(!err.contains("lb_algo"), "{err}");
}

/// `virtual_server fwmark N` becomes a `fwmark = N` service with a TODO
/// for its `[[mark]]` (keepalived.conf cannot say what iptables marks),
/// and `ops` becomes `ops = true`; once the mark is written the output
/// loads.
#[test]
fn fwmark_virtual_servers_import_with_a_mark_to_define() {
    let (d, f) = k_conf(
        "fwmark",
        "virtual_server fwmark 100 {\n  lb_algo rr\n  lb_kind DR\n\
           real_server 198.18.0.11 {\n  }\n}\n\
         virtual_server 198.18.0.100 53 {\n  protocol UDP\n  lb_algo rr\n  lb_kind DR\n  ops\n\
           real_server 198.18.0.12 53 {\n  }\n}\n",
    );
    let (out, err) = import_valid(&f);
    assert!(
        has(
            &err,
            "k.conf:1:",
            "define the mark as a [[mark]] with id = 100"
        ),
        "{err}"
    );
    holds(&out, "#: [[service]]\n#: fwmark = 100\n");
    assert!(
        out.contains("# TODO firewall marks 100:") && out.contains("# id = 100\n"),
        "{out}"
    );
    // It loads as printed, without the mark service ...
    let c = uvs::config::parse(Path::new("imported.toml"), out.as_bytes()).unwrap();
    assert_eq!(c.services.len(), 1);
    // ... and with it once its mark is written and it is uncommented.
    let done = format!(
        "{}\n[[mark]]\nid = 100\nprotocol = \"tcp\"\nvip = \"198.18.0.100\"\nports = \"80,443\"\n",
        out.replace("#: ", "")
    );
    let c = uvs::config::parse(Path::new("imported.toml"), done.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{done}"));
    let fwm = &c.services[1];
    assert_eq!(fwm.def.key, uvs::lvs::service::ServiceKey::mark(100));
    assert_eq!((fwm.real_servers[0].port, fwm.def.ops), (0, false));
    assert!(c.services[0].def.ops);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn persistence_imports_with_keepalived_s_default_and_granularity() {
    const CONF: &str = "virtual_server 198.18.0.100 0 {\n  lb_kind DR\n  protocol TCP\n  \
        persistence_timeout\n  persistence_granularity 255.255.255.0\n  \
        real_server 198.18.0.11 80 {\n  }\n}\n";
    let f = std::env::temp_dir().join(format!("uvs-ka-persist-{}.conf", std::process::id()));
    std::fs::write(&f, CONF).unwrap();
    let (code, out, err) = import(&f);
    let _ = std::fs::remove_file(&f);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("persistence"), "{err}");
    holds(&out, "persistence_timeout = 360");
    holds(&out, "persistence_mask = \"255.255.255.0\"");
    holds(&out, "198.18.0.100:0");
}
