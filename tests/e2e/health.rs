//! End-to-end: real servers that come and go. A server that is absent
//! when it is configured is kept, listed and saved, never scheduled until
//! it answers ARP, and put in service without any command once it does.

use crate::support::holds;
use crate::support::{Lab, RS1, RS2, VIP, count, unix_ms, wait_until};
use std::time::{Duration, Instant};

fn state_of(h: &serde_json::Value, server: &str) -> String {
    h.as_array()
        .unwrap()
        .iter()
        .find(|r| r["server"] == server)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn an_absent_real_server_is_kept_and_joins_when_it_appears() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director();
    // rs2 has no address yet: nothing answers ARP for it.
    l.exec(
        "rs2",
        "ip",
        &["addr", "del", &format!("{RS2}/24"), "dev", "eth0"],
    );
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS2} -g"));
    // A whole restore with it succeeds too.
    let save = format!(
        "-A -u {VIP}:53 -s rr\n-a -u {VIP}:53 -r {RS1}:53 -g\n-a -u {VIP}:53 -r {RS2}:53 -g\n"
    );
    l.restore(&save);
    let listing = l.adm("-Ln");
    holds(&listing, &format!("{RS2}:80"));
    assert!(l.adm("-Sn").contains(&format!("-r {RS2}:53")));
    let h = l.health_json();
    assert_eq!(state_of(&h, &format!("{RS2}:80")), "unresolved", "{h}");
    assert_eq!(state_of(&h, &format!("{RS1}:80")), "up", "{h}");
    let row = h
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["server"] == format!("{RS2}:80"))
        .unwrap();
    assert_eq!(
        (row["resolution"].as_str(), row["check"].as_str()),
        (Some("unresolved"), Some("none")),
        "{row}"
    );
    let text = l.health_text();
    holds(&text, "no ARP reply");

    // No connection goes to it meanwhile.
    let t = l.tcp_names(20);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (20, 0), "{t}");
    let u = l.udp_names(10, 31000);
    assert_eq!((count(&u, "rs1"), count(&u, "rs2")), (10, 0), "{u}");

    // It gets its address: in service within a few seconds, no command.
    l.exec(
        "rs2",
        "ip",
        &["addr", "add", &format!("{RS2}/24"), "dev", "eth0"],
    );
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(10),
        || state_of(&l.health_json(), &format!("{RS2}:80")) == "up",
        || "rs2 never joined".into(),
    );
    let joined = t0.elapsed();
    assert!(joined < Duration::from_secs(5), "{joined:?}");
    let t = l.tcp_names(20);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t}");
    assert!(
        l.log("director.log")
            .contains(&format!("real server {RS2} (Route) resolved"))
    );
}

/// Test 1 of the issue: the server process on one of two real servers
/// stops while a client opens a connection every 20 ms.
#[test]
fn a_tcp_check_takes_a_dead_server_out_and_brings_it_back() {
    let Some(mut l) = Lab::up(2) else { return };
    l.start_server("rs1");
    let rs2 = l.start_server("rs2");
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         [service.check]\ntype = \"tcp\"\ninterval = 0.2\ntimeout = 0.2\nrise = 2\nfall = 3\n\
         [[service.real_server]]\naddress = \"{RS1}\"\n\
         [[service.real_server]]\naddress = \"{RS2}\"\n"
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    l.wait_health_state(&format!("{RS2}:80"), "up", Duration::from_secs(5));
    let target = format!("{VIP}:80");
    l.client_bg(
        &[
            "tcp-timeline",
            "--target",
            &target,
            "--count",
            "250",
            "--interval-ms",
            "20",
        ],
        "timeline.json",
    );
    std::thread::sleep(Duration::from_millis(1000));
    let killed_at = unix_ms();
    std::process::Command::new("kill")
        .arg(rs2.to_string())
        .status()
        .unwrap();
    let down = l
        .wait_health_state(&format!("{RS2}:80"), "down", Duration::from_secs(3))
        .0;
    let down_at = down["since_unix_ms"].as_u64().unwrap();
    // fall x interval (+ the timeout and one interval of phase).
    assert!(
        down_at - killed_at < 1200,
        "down after {} ms",
        down_at - killed_at
    );
    assert_eq!(down["check"], "down");
    assert!(down["resolution"].as_str().unwrap().starts_with("resolved"));
    let reason = down["reason"].as_str().unwrap();
    holds(reason, "3 of 3 checks failed");
    assert!(
        l.adm("-Ln")
            .contains(&format!("{RS2}:80               Route   0"))
    );
    let log = l.log("director.log");
    holds(
        &log,
        &format!("real server {RS2}:80 down (quiesced: weight 0)"),
    );
    std::thread::sleep(Duration::from_millis(1000));
    l.start_server("rs2");
    let up = l
        .wait_health_state(&format!("{RS2}:80"), "up", Duration::from_secs(3))
        .0;
    let up_at = up["since_unix_ms"].as_u64().unwrap();
    assert!(
        l.adm("-Ln")
            .contains(&format!("{RS2}:80               Route   1"))
    );

    let v = l.wait_child_logs("timeline.json", Duration::from_secs(20));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 250);
    // The marks are taken just before the table that applies them is
    // published, and a connection's time is its start, before its SYN
    // reaches the director: connections started within GRACE of a mark
    // may have met either table.
    const GRACE: u64 = 50;
    let late_errors: Vec<_> = results
        .iter()
        .filter(|r| r["error"].is_string() && r["t_ms"].as_u64().unwrap() >= down_at + GRACE)
        .collect();
    assert!(
        late_errors.is_empty(),
        "failed after the down mark: {late_errors:?}"
    );
    // A client port used again (after rs2's reset ended a connection the
    // director still holds as established) follows its old entry, as in
    // IPVS: a SYN reschedules only a TIME_WAIT, CLOSE or (DR) FIN_WAIT
    // entry. Only first uses of a port count.
    let mut seen = std::collections::HashSet::new();
    let to_rs2_while_down: Vec<_> = results
        .iter()
        .filter(|r| seen.insert(r["port"].as_u64().unwrap_or(0)) || r["port"].is_null())
        .filter(|r| {
            let t = r["t_ms"].as_u64().unwrap();
            r["server"] == "rs2" && t >= down_at + GRACE && t + GRACE < up_at
        })
        .collect();
    assert!(
        to_rs2_while_down.is_empty(),
        "down {down_at}, up {up_at}: {to_rs2_while_down:?}\n{}",
        l.log("director.log")
    );
    let back = results
        .iter()
        .filter(|r| r["server"] == "rs2" && r["t_ms"].as_u64().unwrap() > up_at)
        .count();
    assert!(back >= 5, "rs2 rejoined with {back} connections");
}

/// Test 2, HTTP part: a wrong status or a missing body substring marks
/// the server down; the right ones keep it up.
#[test]
fn http_checks_judge_status_and_body() {
    let Some(mut l) = Lab::up(2) else { return };
    for n in ["rs1", "rs2"] {
        l.start_server_on(n, &["--tcp", "80", "--http", "8080"]);
    }
    let svc = |port: u16, check: &str| {
        format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:{port}\"\n\
             [service.check]\ntype = \"http\"\nport = 8080\ninterval = 0.2\nfall = 2\n{check}\n\
             [[service.real_server]]\naddress = \"{RS1}\"\n"
        )
    };
    let cfg = [
        svc(
            81,
            "path = \"/health\"\nstatus = [\"200-299\"]\nbody_contains = \"rs1\"",
        ),
        svc(82, "status = [204, \"500-599\"]"),
        svc(83, "body_contains = \"healthy\""),
        // keepalived's digest: the MD5 of the body ("rs1\n").
        svc(84, "digest = \"7a6c0d2ef5a9e6e1776090916c66ba3a\""),
        svc(85, "digest = \"00000000000000000000000000000000\""),
    ]
    .join("\n");
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let t = Instant::now();
    let rows = loop {
        let h = l.health_json();
        let rows: Vec<(String, String, String)> = h
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if rows.iter().filter(|r| r.1 == "down").count() == 3
            || t.elapsed() > Duration::from_secs(5)
        {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let of = |port: u16| {
        rows.iter()
            .find(|r| r.0.ends_with(&format!(":{port}")))
            .unwrap()
            .clone()
    };
    assert_eq!(of(81).1, "up", "{rows:?}");
    assert_eq!(of(82).1, "down", "{rows:?}");
    assert!(of(82).2.starts_with("HTTP 200"), "{rows:?}");
    assert_eq!(of(83).1, "down", "{rows:?}");
    assert!(of(83).2.contains("lacks \"healthy\""), "{rows:?}");
    assert_eq!(of(84).1, "up", "{rows:?}");
    assert_eq!(of(85).1, "down", "{rows:?}");
    assert!(
        of(85).2.contains("MD5 is 7a6c0d2ef5a9e6e1776090916c66ba3a"),
        "{rows:?}"
    );
}

/// Test 3: all real servers down, new connections go to the sorry
/// server; one comes back, they go to it. The quorum commands run.
#[test]
fn the_sorry_server_takes_over_while_the_quorum_is_lost() {
    let Some(mut l) = Lab::up(3) else { return };
    let rs1 = l.start_server("rs1");
    let rs2 = l.start_server("rs2");
    l.start_server("rs3");
    let (down_flag, up_flag) = (l.dir.join("quorum-down"), l.dir.join("quorum-up"));
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         quorum_down = \"touch {}\"\nquorum_up = \"touch {}\"\n\
         [service.check]\ntype = \"tcp\"\ninterval = 0.2\ntimeout = 0.2\nrise = 1\nfall = 2\n\
         [service.sorry_server]\naddress = \"198.18.0.13\"\n\
         [[service.real_server]]\naddress = \"{RS1}\"\n\
         [[service.real_server]]\naddress = \"{RS2}\"\n",
        down_flag.display(),
        up_flag.display()
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    l.wait_health_state(&format!("{RS2}:80"), "up", Duration::from_secs(5));
    let t = l.tcp_names(10);
    assert_eq!(
        (count(&t, "rs1"), count(&t, "rs2"), count(&t, "rs3")),
        (5, 5, 0),
        "{t}"
    );
    assert!(!l.adm("-Ln").contains("198.18.0.13"));

    for pid in [rs1, rs2] {
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap();
    }
    l.wait_health_state(&format!("{RS1}:80"), "down", Duration::from_secs(3));
    l.wait_health_state(&format!("{RS2}:80"), "down", Duration::from_secs(3));
    wait_until(
        Duration::from_secs(3),
        || l.adm("-Ln").contains("198.18.0.13:80"),
        || l.log("director.log"),
    );
    let t = l.tcp_names(10);
    assert_eq!(count(&t, "rs3"), 10, "{t}");
    let log = l.log("director.log");
    holds(&log, "quorum lost: live weight 0, quorum 1");
    wait_until(
        Duration::from_secs(3),
        || down_flag.exists(),
        || "quorum_down did not run".into(),
    );

    // One comes back: new connections go to it, the sorry server leaves.
    l.start_server("rs1");
    l.wait_health_state(&format!("{RS1}:80"), "up", Duration::from_secs(3));
    wait_until(
        Duration::from_secs(3),
        || !(l.adm("-Ln").contains("198.18.0.13:80")),
        || l.log("director.log"),
    );
    let t = l.tcp_names(10);
    assert_eq!(count(&t, "rs1"), 10, "{t}");
    wait_until(
        Duration::from_secs(3),
        || up_flag.exists(),
        || "quorum_up did not run".into(),
    );
}

/// Test 2, the other kinds: UDP, DNS and exec checks, each both ways;
/// an exec check's exit code 2-255 sets the weight (misc_dynamic).
#[test]
fn udp_dns_and_exec_checks_work_both_ways() {
    let Some(mut l) = Lab::up(2) else { return };
    let (udp_ok, dns_ok) = (format!("{RS1}:5300"), format!("{RS1}:5353"));
    l.start_server_on("rs1", &["--tcp", "80", "--udp", &udp_ok, "--dns", &dns_ok]);
    let flag = l.dir.join("rs1-healthy");
    std::fs::write(&flag, b"").unwrap();
    let svc = |port: u16, check: &str| {
        format!(
            "[[service]]\nprotocol = \"udp\"\naddress = \"{VIP}:{port}\"\n\
             [service.check]\ninterval = 0.2\ntimeout = 0.3\nfall = 2\n{check}\n\
             [[service.real_server]]\naddress = \"{RS1}\"\n"
        )
    };
    let weight_file = l.dir.join("weight");
    std::fs::write(&weight_file, b"7").unwrap();
    let cfg = [
        svc(
            1,
            "type = \"udp\"\nport = 5300\npayload = \"NAME\"\nexpect = \"rs1\"",
        ),
        svc(2, "type = \"udp\"\nport = 5301\npayload = \"NAME\""),
        svc(
            3,
            "type = \"udp\"\nport = 5300\npayload = \"NAME\"\nexpect = \"rs9\"",
        ),
        svc(4, "type = \"dns\"\nport = 5353\nname = \"www.example.com\""),
        svc(5, "type = \"dns\"\nport = 5353\nname = \"nx.example.com\""),
        svc(
            6,
            &format!("type = \"exec\"\ncommand = \"test -e {}\"", flag.display()),
        ),
        svc(
            7,
            &format!(
                "type = \"exec\"\ncommand = \"exit $(cat {})\"\ndynamic = true",
                weight_file.display()
            ),
        ),
    ]
    .join("\n");
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let state = |port: u16| {
        let h = l.health_json();
        let r = h
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == format!("UDP {VIP}:{port}"))
            .cloned()
            .unwrap();
        (
            r["state"].as_str().unwrap().to_string(),
            r["reason"].as_str().unwrap().to_string(),
        )
    };
    let wait = |port: u16, want: &str| {
        let t = Instant::now();
        loop {
            let s = state(port);
            if s.0 == want {
                return s.1;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "UDP :{port} never {want}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait(1, "up");
    assert!(wait(2, "down").contains("port unreachable"));
    assert!(wait(3, "down").contains("lacks \"rs9\""));
    wait(4, "up");
    assert!(wait(5, "down").contains("rcode 3"));
    wait(6, "up");
    wait(7, "up");
    // misc_dynamic: exit 7 is weight 5, shown as keepalived would.
    let t = Instant::now();
    while !l
        .adm("-Ln")
        .contains(&format!("{RS1}:7                Route   5"))
    {
        assert!(t.elapsed() < Duration::from_secs(3), "{}", l.adm("-Ln"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // And back the other way: the exec check's file goes, exit 1 is down.
    std::fs::remove_file(&flag).unwrap();
    assert!(wait(6, "down").contains("exited 1"));
    std::fs::write(&flag, b"").unwrap();
    wait(6, "up");
}

/// Every kind of check reaches an IPv6 real server: TCP, HTTP (with
/// `Host: [addr]`), UDP and DNS, each judged both ways (an ICMPv6 port
/// unreachable is a refusal as ICMP's is), and `uvs health` names the
/// servers as `[addr]:port`.
#[test]
fn every_check_kind_reaches_an_ipv6_real_server() {
    use crate::support::{RS1_6, VIP6};
    let Some(mut l) = Lab::up(1) else { return };
    let (udp_ok, dns_ok) = (format!("[{RS1_6}]:5300"), format!("[{RS1_6}]:5353"));
    l.start_server_on(
        "rs1",
        &[
            "--tcp", "80", "--http", "8080", "--udp", &udp_ok, "--dns", &dns_ok,
        ],
    );
    let svc = |proto: &str, port: u16, check: &str| {
        format!(
            "[[service]]\nprotocol = \"{proto}\"\naddress = \"[{VIP6}]:{port}\"\n\
             [service.check]\ninterval = 0.2\ntimeout = 0.3\nfall = 2\n{check}\n\
             [[service.real_server]]\naddress = \"{RS1_6}\"\n"
        )
    };
    let cfg = [
        svc("tcp", 1, "type = \"tcp\"\nport = 80"),
        svc("tcp", 2, "type = \"tcp\"\nport = 81"),
        svc(
            "tcp",
            3,
            "type = \"http\"\nport = 8080\nbody_contains = \"rs1\"",
        ),
        svc("tcp", 4, "type = \"http\"\nport = 8080\nstatus = [204]"),
        svc(
            "udp",
            5,
            "type = \"udp\"\nport = 5300\npayload = \"NAME\"\nexpect = \"rs1\"",
        ),
        svc("udp", 6, "type = \"udp\"\nport = 5301\npayload = \"NAME\""),
        svc(
            "udp",
            7,
            "type = \"dns\"\nport = 5353\nname = \"www.example.com\"",
        ),
        svc(
            "udp",
            8,
            "type = \"dns\"\nport = 5353\nname = \"nx.example.com\"",
        ),
    ]
    .join("\n");
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let row = |port: u16| {
        let h = l.health_json();
        h.as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["service"]
                    .as_str()
                    .is_some_and(|s| s.ends_with(&format!("]:{port}")))
            })
            .cloned()
            .unwrap_or_default()
    };
    let wait = |port: u16, want: &str| {
        let t = Instant::now();
        loop {
            let r = row(port);
            if r["state"] == want {
                return r;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                ":{port} never {want}: {r}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The reason a check on `port` went down.
    let down = |port: u16| wait(port, "down")["reason"].as_str().unwrap().to_string();
    let up = wait(1, "up");
    assert_eq!(up["server"], format!("[{RS1_6}]:1"), "{up}");
    assert_eq!(up["service"], format!("TCP [{VIP6}]:1"), "{up}");
    assert!(down(2).contains("refused"));
    wait(3, "up");
    assert!(down(4).starts_with("HTTP 200"));
    wait(5, "up");
    let r = down(6);
    assert!(r.contains("port unreachable"), "{r}");
    wait(7, "up");
    assert!(down(8).contains("rcode 3"));
    let text = l.health_text();
    holds(&text, &format!("UDP [{VIP6}]:5      [{RS1_6}]:5 "));
}
