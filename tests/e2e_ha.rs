//! End-to-end: two directors on one switch, one active by priority over
//! authenticated unicast heartbeats. Failover on a crash, no two holders
//! under one-way heartbeat loss, forged heartbeats refused and counted.

mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{Lab, RS1, RS2, VIP, count, wait_until};

struct Pair {
    l: Lab,
    a: u32,
    socks: [PathBuf; 2],
}

fn ha(l: &Lab, node: &str, sock: &std::path::Path) -> serde_json::Value {
    let o = l.exec(
        node,
        env!("CARGO_BIN_EXE_uvs"),
        &["ha", "--json", "--socket", sock.to_str().unwrap()],
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn role(l: &Lab, node: &str, sock: &std::path::Path) -> String {
    ha(l, node, sock)["role"]
        .as_str()
        .unwrap_or("gone")
        .to_string()
}

/// Directors A (198.18.0.2, priority 200) and B (198.18.0.3, 100) with
/// the same DR service, A active.
fn pair() -> Option<Pair> {
    let mut l = Lab::up_with(2, &["--two-directors"])?;
    l.start_servers(2);
    let key = l.dir.join("ha.key");
    std::fs::write(&key, b"a shared secret of enough length\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = l.dir.join("uvs.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
             [[service.real_server]]\naddress = \"{RS1}\"\n[[service.real_server]]\naddress = \"{RS2}\"\n"
        ),
    )
    .unwrap();
    let socks = [l.dir.join("a.sock"), l.dir.join("b.sock")];
    let mut pids = Vec::new();
    for (node, peer, prio, sock, log) in [
        ("dir", "198.18.0.3", "200", &socks[0], "a.log"),
        ("dir2", "198.18.0.2", "100", &socks[1], "b.log"),
    ] {
        let args = [
            "director",
            "-i",
            "eth0",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--peer",
            peer,
            "--priority",
            prio,
            "--ha-key-file",
            key.to_str().unwrap(),
        ];
        pids.push(l.spawn(node, env!("CARGO_BIN_EXE_uvs"), &args, log));
    }
    wait_until(
        Duration::from_secs(10),
        || role(&l, "dir", &socks[0]) == "active" && role(&l, "dir2", &socks[1]) == "backup",
        || format!("{}\n{}", l.log("a.log"), l.log("b.log")),
    );
    Some(Pair {
        a: pids[0],
        socks,
        l,
    })
}

#[test]
fn the_backup_takes_over_when_the_active_director_dies() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    let t = l.tcp_names(20);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), 20, "{t}");
    // The backup answers no ARP and forwards nothing: its counters stay 0.
    let b_status = l.exec(
        "dir2",
        env!("CARGO_BIN_EXE_uvs"),
        &["status", "--socket", p.socks[1].to_str().unwrap()],
    );
    let b_status = String::from_utf8_lossy(&b_status.stdout).into_owned();
    assert!(
        b_status
            .lines()
            .any(|x| x.starts_with("forwarded") && x.ends_with(" 0")),
        "{b_status}"
    );

    std::process::Command::new("kill")
        .args(["-KILL", &p.a.to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(5),
        || role(l, "dir2", &p.socks[1]) == "active",
        || l.log("b.log"),
    );
    println!(
        "failover: the backup holds the VIPs {} ms after the kill",
        t0.elapsed().as_millis()
    );
    assert!(t0.elapsed() < Duration::from_millis(2500));
    let t = l.tcp_names(20);
    assert_eq!(count(&t, "rs1") + count(&t, "rs2"), 20, "{t}");
    assert!(
        l.log("b.log").contains("HA: now active"),
        "{}",
        l.log("b.log")
    );
}

#[test]
fn forged_and_truncated_heartbeats_are_refused_and_counted() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    // From A's own address (a peer), with the right magic but no key.
    let mut forged = b"UVSH\x01\x01\xff\x00".to_vec();
    forged.resize(72, 0x41);
    let hex: String = forged.iter().map(|b| format!("{b:02x}")).collect();
    for h in [hex.as_str(), "55565348"] {
        let o = l.exec(
            "dir",
            &support::lab_tool(),
            &[
                "udp-send",
                "--bind",
                "198.18.0.2:0",
                "--target",
                "198.18.0.3:5405",
                "--hex",
                h,
            ],
        );
        assert!(o.status.success());
    }
    // And from the client, which is no peer at all.
    l.exec(
        "cl",
        &support::lab_tool(),
        &[
            "udp-send",
            "--bind",
            "198.18.0.10:0",
            "--target",
            "198.18.0.3:5405",
            "--hex",
            &hex,
        ],
    );
    wait_until(
        Duration::from_secs(3),
        || {
            let c = &ha(l, "dir2", &p.socks[1])["counters"];
            c["bad_mac"].as_u64() >= Some(1)
                && c["malformed"].as_u64() >= Some(1)
                && c["unknown_sender"].as_u64() >= Some(1)
        },
        || ha(l, "dir2", &p.socks[1]).to_string(),
    );
    assert_eq!(role(l, "dir", &p.socks[0]), "active");
    assert_eq!(role(l, "dir2", &p.socks[1]), "backup");
}

/// Heartbeats from A to B dropped on the switch: B cannot hear A, A sees
/// that in B's heartbeats and lets go before B takes over, so the two
/// never hold the VIPs at once (sampled every 20 ms), and both report it.
#[test]
fn one_way_heartbeat_loss_never_leaves_two_holders() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    let o = l.sh(
        "sw",
        "nft add table bridge uvsha && nft add chain bridge uvsha hb '{ type filter hook forward priority 0; }' \
         && nft add rule bridge uvsha hb ip saddr 198.18.0.2 ip daddr 198.18.0.3 udp dport 5405 drop",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t0 = Instant::now();
    let mut both = 0;
    let mut b_active_at = None;
    while t0.elapsed() < Duration::from_secs(4) {
        let (a, b) = (role(l, "dir", &p.socks[0]), role(l, "dir2", &p.socks[1]));
        both += usize::from(a == "active" && b == "active");
        if b == "active" && b_active_at.is_none() {
            b_active_at = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(both, 0, "both held the VIPs in {both} samples");
    assert!(
        b_active_at.is_some(),
        "B never took over:\n{}\n{}",
        l.log("a.log"),
        l.log("b.log")
    );
    println!(
        "one-way loss: B holds the VIPs after {:?}",
        b_active_at.unwrap()
    );
    assert_eq!(role(l, "dir", &p.socks[0]), "backup");
    let a = ha(l, "dir", &p.socks[0]);
    assert_eq!(a["peers"][0]["hears_us"], false, "{a}");
    let b = ha(l, "dir2", &p.socks[1]);
    assert_eq!(b["peers"][0]["live"], false, "{b}");
    assert!(
        l.log("a.log").contains("does not hear this director"),
        "{}",
        l.log("a.log")
    );
}
