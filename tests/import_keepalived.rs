//! `uvs import-keepalived` on keepalived.conf files in the shapes of
//! keepalived's samples (proved valid keepalived input with `keepalived
//! -t`), and the imported config driving real traffic.

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Lab, RS1, RS2, VIP, count, wait_until};
use uvs::lvs::service::Forward;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived/keepalived.conf")
}

fn import(path: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("import-keepalived")
        .arg(path)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// keepalived's own syntax check; under CI keepalived must be installed.
fn keepalived_accepts(path: &Path) -> Option<bool> {
    match Command::new("keepalived")
        .arg("-t")
        .arg("-f")
        .arg(path)
        .output()
    {
        Ok(o) => Some(o.status.success()),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("keepalived is not installed (scripts/deps.sh)")
        }
        Err(_) => {
            eprintln!("SKIPPED: keepalived -t (not installed)");
            None
        }
    }
}

#[test]
fn the_sample_shapes_import_with_a_warning_for_each_option_left_out() {
    assert_ne!(
        keepalived_accepts(&fixture()),
        Some(false),
        "the fixture is not valid keepalived input"
    );
    let (code, out, err) = import(&fixture());
    assert_eq!(code, 0, "{err}");
    let c = uvs::config::parse(Path::new("imported.toml"), out.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    let keys: Vec<String> = c
        .services
        .iter()
        .map(|s| format!("{} {}:{}", s.key.protocol.name(), s.key.addr, s.key.port))
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
    assert_eq!(web.scheduler.name(), "wrr");
    // keepalived removes a failed server unless inhibit_on_failure.
    assert_eq!(web.on_failure, uvs::control::model::FailAction::Remove);
    let tcp = web.real_servers[0].check.as_ref().unwrap();
    assert_eq!(
        (tcp.kind_name(), tcp.fall, tcp.interval),
        ("TCP", 2, Duration::from_secs(1))
    );
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
        ("keepalived.conf:27:", "persistence"),
        ("keepalived.conf:34:", "delay_before_retry"),
        ("keepalived.conf:44:", "second url"),
        ("dns.conf:27:", "firewall-mark"),
        ("dns.conf:36:", "lb_algo lblc"),
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
    assert!(out.contains("198.18.0.11"), "{out}");
    std::fs::write(&f, "virtual_server 198.18.0.100 80 {\n").unwrap();
    let (code, _, err) = import(&f);
    assert_eq!(code, 1);
    assert!(
        err.contains("k.conf:1") && err.contains("never closed"),
        "{err}"
    );
    let (code, _, err) = import(&d.join("absent.conf"));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The imported config runs the director: DR with TCP checks, a failed
/// server removed as keepalived would.
#[test]
fn an_imported_config_drives_the_director() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_server("rs1");
    let rs2 = l.start_server("rs2");
    let ka = l.dir.join("keepalived.conf");
    std::fs::write(
        &ka,
        format!(
            "virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n\
             \n  real_server {RS1} 80 {{\n    weight 3\n    TCP_CHECK {{\n      connect_timeout 1\n      retry 1\n    }}\n  }}\
             \n  real_server {RS2} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 1\n      retry 1\n    }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    assert_ne!(keepalived_accepts(&ka), Some(false));
    let (code, out, err) = import(&ka);
    assert_eq!(code, 0, "{err}");
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, out).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", cfg.to_str().unwrap()]);
    wait_until(
        Duration::from_secs(5),
        || l.adm("-Ln").contains(&format!("{RS2}:80")),
        || l.log("director.log"),
    );
    let t = l.tcp_names(40);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (30, 10), "{t}");
    Command::new("kill").arg(rs2.to_string()).status().unwrap();
    wait_until(
        Duration::from_secs(5),
        || !(l.adm("-Ln").contains(&format!("{RS2}:80"))),
        || l.log("director.log"),
    );
    let t = l.tcp_names(20);
    assert_eq!(
        (count(&t, "rs1"), t["errors"].as_u64()),
        (20, Some(0)),
        "{t}"
    );
}

/// Test 6 with NAT: HTTP_GET and MISC_CHECK real servers behind a
/// two-armed director, imported and run as keepalived would.
#[test]
fn an_imported_nat_config_with_http_and_misc_checks_drives_the_director() {
    let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
        return;
    };
    for n in ["nat1", "nat2"] {
        l.start_server_on(
            n,
            &["--tcp", "8080", "--udp", "0.0.0.0:5353", "--http", "8000"],
        );
    }
    let flag = l.dir.join("nat2-ok");
    std::fs::write(&flag, b"").unwrap();
    let ka = l.dir.join("keepalived.conf");
    std::fs::write(
        &ka,
        format!(
            "global_defs {{\n  script_user root\n  enable_script_security\n}}\n\
             virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
             \n  real_server 198.18.2.11 8080 {{\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_port 8000\n      connect_timeout 1\n    }}\n  }}\
             \n  real_server 198.18.2.12 8080 {{\n    MISC_CHECK {{\n      misc_path \"/usr/bin/test -e {}\"\n      misc_timeout 1\n      misc_dynamic\n    }}\n  }}\n}}\n\
             virtual_server {VIP} 53 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol UDP\n\
             \n  real_server 198.18.2.11 5353 {{\n    TCP_CHECK {{\n      connect_port 8080\n      connect_timeout 1\n    }}\n  }}\
             \n  real_server 198.18.2.12 5353 {{\n    TCP_CHECK {{\n      connect_port 8080\n      connect_timeout 1\n    }}\n  }}\n}}\n",
            flag.display()
        ),
    )
    .unwrap();
    assert_ne!(
        keepalived_accepts(&ka),
        Some(false),
        "not valid keepalived input"
    );
    let (code, out, err) = import(&ka);
    assert_eq!(code, 0, "{err}");
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, out).unwrap();
    l.start_director_with(&[
        "-i",
        "eth0",
        "-i",
        "eth1",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let t = l.tcp_names(20);
    assert_eq!((count(&t, "nat1"), count(&t, "nat2")), (10, 10), "{t}");
    let u = l.udp_names(20, 32000);
    assert_eq!((count(&u, "nat1"), count(&u, "nat2")), (10, 10), "{u}");
    // The MISC_CHECK fails: keepalived (no inhibit_on_failure) removes it.
    std::fs::remove_file(&flag).unwrap();
    let t0 = Instant::now();
    while l
        .adm(&format!("-Ln -t {VIP}:80"))
        .contains("198.18.2.12:8080")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{}",
            l.log("director.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = l.tcp_names(10);
    assert_eq!(
        (count(&t, "nat1"), t["errors"].as_u64()),
        (10, Some(0)),
        "{t}"
    );
}
