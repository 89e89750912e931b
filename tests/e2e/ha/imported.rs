//! A keepalived unicast pair imported with `uvs import-keepalived`: the
//! two imported configs (B's file is A's with the two addresses
//! swapped) run two directors that fail over as keepalived's pair would,
//! with keepalived's timing (an advert a second, a peer gone after 3).

use super::{NODES, Pair};
use crate::support::keepalived::{import_valid_vrrp, vrrp_fixture};
use crate::support::{Lab, wait_until};
use std::time::Duration;

/// `text` with 198.18.0.2 and 198.18.0.3 swapped.
fn swapped(text: &str) -> String {
    text.replace("198.18.0.2", "@A@")
        .replace("198.18.0.3", "198.18.0.2")
        .replace("@A@", "198.18.0.3")
}

#[test]
fn an_imported_unicast_pair_fails_over() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_with(2, &["--two-directors"]) else {
        return;
    };
    l.start_servers(2);
    let key = l.ha_key();
    let a_conf = vrrp_fixture("unicast.conf");
    let b_conf = l.dir.join("keepalived-b.conf");
    std::fs::write(&b_conf, swapped(&std::fs::read_to_string(&a_conf).unwrap())).unwrap();
    let (a, _) = import_valid_vrrp(&a_conf);
    let (b, _) = import_valid_vrrp(&b_conf);
    // Only the addresses differ (and the comments naming the file).
    let body = |t: &str| {
        let lines = t.lines().filter(|l| !l.contains(".conf"));
        lines.collect::<Vec<_>>().join("\n")
    };
    assert_eq!(body(&swapped(&a)), body(&b));
    let socks = [l.dir.join("a.sock"), l.dir.join("b.sock")];
    let mut args: [Vec<String>; 2] = Default::default();
    for (i, text) in [a, b].iter().enumerate() {
        let cfg = l.dir.join(format!("uvs-{}.toml", NODES[i]));
        std::fs::write(&cfg, text).unwrap();
        args[i] = [
            "director",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            socks[i].to_str().unwrap(),
            // The file's ha_key_file is /etc/uvs/ha.key: a flag wins.
            "--ha-key-file",
            key.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
    }
    let mut p = Pair {
        l,
        pids: [0, 0],
        socks,
        args,
        starts: 0,
    };
    // A first: with equal priorities and nopreempt, the holder keeps the
    // VIPs; B then joins as the backup.
    p.start(0);
    p.starts -= 1;
    wait_until(
        Duration::from_secs(15),
        || p.role(0) == "active",
        || p.logs(),
    );
    p.start(1);
    wait_until(
        Duration::from_secs(15),
        || p.role(1) == "backup",
        || p.logs(),
    );
    p.all_answered(10);
    let gap = p.fail_over();
    println!(
        "imported pair: the backup holds the VIPs {} ms after the kill (keepalived's 3 x 1 s)",
        gap.as_millis()
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
    p.all_answered(10);
    p.l.assert_log("b1.log", "HA: now active");
}
