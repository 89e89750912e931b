//! End-to-end: the director started from a config file, reloaded with
//! changes while connections run, and refusing bad files with their line
//! and column.

mod support;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Lab, RS1, RS2, VIP, count, wait_until};

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
    l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["reload", "--socket", l.socket().to_str().unwrap()],
    )
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
    assert!(listing.contains(&format!("TCP  {VIP}:81")), "{listing}");
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
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 changes"));
    let listing = l.adm("-Ln");
    assert!(!listing.contains(&format!("{VIP}:81")), "{listing}");
    assert!(
        listing.contains(&format!("{RS1}:80               Route   3")),
        "{listing}"
    );
    let udp = l.adm(&format!("-Ln -u {VIP}:53"));
    assert!(udp.contains(&format!("{RS2}:53")), "{udp}");
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
