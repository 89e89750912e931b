//! End-to-end: real servers that come and go. A server that is absent
//! when it is configured is kept, listed and saved, never scheduled until
//! it answers ARP, and put in service without any command once it does.

mod support;
use std::time::{Duration, Instant};
use support::{Lab, RS1, RS2, VIP, count};

fn health(l: &Lab) -> serde_json::Value {
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["health", "--json", "--socket", l.socket().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("health JSON")
}

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
    let o = l.uvsadm_stdin(&["-R"], Some(save.as_bytes()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listing = l.adm("-Ln");
    assert!(listing.contains(&format!("{RS2}:80")), "{listing}");
    assert!(l.adm("-Sn").contains(&format!("-r {RS2}:53")));
    let h = health(&l);
    assert_eq!(state_of(&h, &format!("{RS2}:80")), "unresolved", "{h}");
    assert_eq!(state_of(&h, &format!("{RS1}:80")), "up", "{h}");
    let text = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["health", "--socket", l.socket().to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("no ARP reply"), "{text}");

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
    while state_of(&health(&l), &format!("{RS2}:80")) != "up" {
        assert!(t0.elapsed() < Duration::from_secs(10), "rs2 never joined");
        std::thread::sleep(Duration::from_millis(100));
    }
    let joined = t0.elapsed();
    assert!(joined < Duration::from_secs(5), "{joined:?}");
    let t = l.tcp_names(20);
    assert_eq!((count(&t, "rs1"), count(&t, "rs2")), (10, 10), "{t}");
    assert!(
        l.log("director.log")
            .contains(&format!("real server {RS2} (Route) resolved"))
    );
}
