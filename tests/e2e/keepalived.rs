//! End-to-end: a keepalived.conf imported with `uvs import-keepalived`
//! runs the director (its checks and its table).

use crate::support::keepalived::{import_valid, import_valid_vrrp, vrrp_fixture};
use crate::support::{Lab, RS1, RS2, VIP, count, wait_until};
use std::process::Command;
use std::time::{Duration, Instant};

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
    let (out, _) = import_valid(&ka);
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
    let (out, _) = import_valid(&ka);
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

/// The MISC_CHECK fixture (no misc_dynamic): its first server's script
/// exits 2, which keepalived takes as down, and so does uvs; the second's
/// passes.
#[test]
fn an_imported_misc_check_without_misc_dynamic_takes_exit_2_as_down() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let (out, _) = import_valid_vrrp(&vrrp_fixture("misc-check.conf"));
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, out).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", cfg.to_str().unwrap()]);
    wait_until(
        Duration::from_secs(5),
        || {
            let ln = l.adm("-Ln");
            ln.contains(&format!("{RS2}:80")) && !ln.contains(&format!("{RS1}:80"))
        },
        || format!("{}\n{}", l.adm("-Ln"), l.log("director.log")),
    );
    l.assert_log("director.log", "exited 2");
    let t = l.tcp_names(10);
    assert_eq!(count(&t, "rs2"), 10, "{t}");
}

/// The multicast and sync-group fixtures run the director as imported:
/// the multicast one alone (its HA settings commented out until peers
/// are listed), the sync group's two-armed NAT one with its peer absent,
/// so it takes the VIPs after keepalived's 3 adverts.
#[test]
fn the_imported_multicast_and_sync_group_configs_run_the_director() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let (out, _) = import_valid_vrrp(&vrrp_fixture("multicast.conf"));
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, out).unwrap();
    l.start_director_with(&["--config", cfg.to_str().unwrap()]);
    let t = l.tcp_names(10);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), 10, "{t}");
    drop(l);

    let Some(mut l) = Lab::up_with(2, &["--nat"]) else {
        return;
    };
    for n in ["nat1", "nat2"] {
        l.start_server_on(n, &["--http", "80"]);
    }
    let key = l.ha_key();
    let (out, _) = import_valid_vrrp(&vrrp_fixture("sync-group.conf"));
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(&cfg, out).unwrap();
    let (c, k) = (cfg.to_str().unwrap(), key.to_str().unwrap());
    l.start_director_with(&["--config", c, "--ha-key-file", k]);
    let role = || {
        let o = l.exec(
            "dir",
            env!("CARGO_BIN_EXE_uvs"),
            &["ha", "--json", "--socket", l.socket().to_str().unwrap()],
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()["role"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_until(
        Duration::from_secs(15),
        || role() == "active" && l.adm("-Ln").matches("Masq").count() == 2,
        || format!("{}\n{}", l.adm("-Ln"), l.log("director.log")),
    );
}
