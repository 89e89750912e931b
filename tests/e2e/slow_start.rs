//! End-to-end: slow start. A real server that joins (restored by its
//! check, added) gets its weight over `slow_start` seconds: its share of
//! new connections rises over the ramp, measured in 1 s windows of real
//! TCP connections, and `-Ln` and `uvs health` show the ramp.

use crate::support::{Lab, RS1, RS2, VIP, fixed_backend_run, holds, wait_until};
use std::time::{Duration, Instant};

/// The weight `-Ln` lists for a real server of TCP VIP:80.
fn listed_weight(l: &Lab, rs: &str) -> u32 {
    let list = l.adm("-Ln");
    let line = list
        .lines()
        .find(|x| x.contains(&format!("-> {rs}:80")))
        .unwrap_or_else(|| panic!("{rs} not listed:\n{list}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn a_recovered_servers_share_rises_over_its_slow_start() {
    if !fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_server("rs1");
    let rs2 = l.start_server("rs2");
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"wrr\"\n\
         slow_start = 5\n\
         [service.check]\ntype = \"tcp\"\ninterval = 0.2\ntimeout = 0.2\nrise = 2\nfall = 2\n\
         [[service.real_server]]\naddress = \"{RS1}\"\nweight = 10\n\
         [[service.real_server]]\naddress = \"{RS2}\"\nweight = 10\n"
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let rs2_key = format!("{RS2}:80");
    wait_until(
        Duration::from_secs(5),
        || l.health_row(&rs2_key)["state"] == "up",
        || "rs2 never up".into(),
    );
    // Loaded with the service: no ramp (nothing to protect it from).
    assert_eq!(listed_weight(&l, RS2), 10);
    std::process::Command::new("kill")
        .arg(rs2.to_string())
        .status()
        .unwrap();
    wait_until(
        Duration::from_secs(3),
        || l.health_row(&rs2_key)["state"] == "down",
        || "rs2 never down".into(),
    );
    // New connections over 8 s, 50 a second, while rs2 comes back.
    let target = format!("{VIP}:80");
    let args = ["tcp-timeline", "--target", &target, "--count", "400"];
    l.client_bg(
        &[&args[..], &["--interval-ms", "20"]].concat(),
        "timeline.json",
    );
    std::thread::sleep(Duration::from_millis(500));
    l.start_server("rs2");
    let t = Instant::now();
    let up = loop {
        let r = l.health_row(&rs2_key);
        if r["state"] == "up" {
            break r;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "rs2 never back: {r}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // On its ramp: uvs health and -Ln say so.
    let (now, left) = (up["weight_now"].as_u64(), up["ramp_left_ms"].as_u64());
    assert!(matches!(now, Some(1..=3)), "{up}");
    assert!(matches!(left, Some(4000..=5000)), "{up}");
    assert!(
        (1..=4).contains(&listed_weight(&l, RS2)),
        "{}",
        l.adm("-Ln")
    );
    let text = l.health_text();
    holds(&text, "slow start: weight ");
    let up_at = up["since_unix_ms"].as_u64().unwrap();

    let tl = l.wait_child_logs("timeline.json", Duration::from_secs(12));
    let results = tl["results"].as_array().unwrap();
    let errors = results.iter().filter(|r| r["error"].is_string()).count();
    assert_eq!(errors, 0, "{tl}");
    // rs2's share of new connections in 1 s windows from its return.
    let share = |from: i64, to: i64| {
        let w: Vec<&serde_json::Value> = results
            .iter()
            .filter(|r| {
                let dt = r["t_ms"].as_i64().unwrap() - up_at as i64;
                (from..to).contains(&dt)
            })
            .collect();
        let n = w.iter().filter(|r| r["server"] == "rs2").count();
        (n as f64 / w.len().max(1) as f64, w.len())
    };
    let before = share(-300_000, -100);
    assert_eq!(before.0, 0.0, "rs2 took connections while down: {before:?}");
    let windows: Vec<(f64, usize)> = (0..6).map(|k| share(k * 1000, (k + 1) * 1000)).collect();
    println!("rs2's share per second from its return: {windows:?}");
    assert!(windows.iter().all(|w| w.1 >= 25), "{windows:?}");
    // Linear 1..10 of 10 against rs1's 10: about 13, 26, 35, 43, 49, 50 %.
    assert!(windows[0].0 < 0.25, "{windows:?}");
    for k in 1..6 {
        assert!(windows[k].0 + 0.08 >= windows[k - 1].0, "{windows:?}");
    }
    assert!(windows[4].0 > windows[0].0 + 0.15, "{windows:?}");
    assert!((0.40..=0.60).contains(&windows[5].0), "{windows:?}");
    assert_eq!(listed_weight(&l, RS2), 10);
    assert!(l.health_row(&rs2_key)["ramp_left_ms"].is_null());
}

#[test]
fn an_added_server_ramps_and_uvsadm_saves_its_slow_start() {
    if !fixed_backend_run() {
        return;
    }
    let Some(l) = Lab::up_serving(2) else { return };
    l.adm(&format!("-A -t {VIP}:80 -s wrr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g -w 100"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS2} -g -w 100 --slow-start 2"));
    let w = listed_weight(&l, RS2);
    assert!((1..=30).contains(&w), "{}", l.adm("-Ln"));
    assert_eq!(listed_weight(&l, RS1), 100);
    holds(
        &l.adm("-Sn"),
        &format!("-r {RS2}:80 -g -w 100 --slow-start 2"),
    );
    wait_until(
        Duration::from_secs(4),
        || listed_weight(&l, RS2) == 100,
        || l.adm("-Ln"),
    );
    // A bad value is refused with uvsadm's kind of message.
    let o = l.uvsadm(&[
        "-e",
        "-t",
        &format!("{VIP}:80"),
        "-r",
        RS2,
        "--slow-start",
        "99999",
    ]);
    assert!(!o.status.success());
    holds(&String::from_utf8_lossy(&o.stderr), "illegal slow start");
}
