//! End-to-end: health checks through the data path (`via_vip`). A DR
//! real server whose VIP leaves `lo` still answers on its own address,
//! but no longer takes the VIP's traffic: the via-VIP check, a SYN to the
//! VIP sent to the server's MAC, takes it out with the cause named, and
//! brings it back when the VIP returns.

use crate::support::{Lab, RS1, RS2, VIP, holds};
use std::time::Duration;

/// Test 2 of issue 32: the VIP removed from one real server's `lo`.
#[test]
fn a_via_vip_check_takes_out_a_server_without_the_vip() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    let cfg = format!(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP}:80\"\nscheduler = \"rr\"\n\
         [service.check]\ntype = \"tcp\"\nvia_vip = true\ninterval = 0.2\ntimeout = 0.2\n\
         rise = 1\nfall = 3\n\
         [[service.real_server]]\naddress = \"{RS1}\"\n\
         [[service.real_server]]\naddress = \"{RS2}\"\n"
    );
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    l.start_director_with(&["-i", "eth0", "--config", path.to_str().unwrap()]);
    let rs2 = format!("{RS2}:80");
    l.wait_health_state(&rs2, "up", Duration::from_secs(5));
    // Up for a while: the checks pass through the VIP.
    std::thread::sleep(Duration::from_millis(600));
    let r = l.health_row(&rs2);
    assert_eq!(r["state"], "up", "{r}\n{}", l.log("director.log"));
    assert_eq!(l.health_row(&format!("{RS1}:80"))["state"], "up");

    let vip = format!("{VIP}/32");
    l.exec("rs2", "ip", &["addr", "del", &vip, "dev", "lo"]);
    // Its own address still answers.
    let connect = format!("exec 3<>/dev/tcp/{RS2}/80 && echo open");
    let own = l.exec("dir", "bash", &["-c", &connect]);
    holds(&String::from_utf8_lossy(&own.stdout), "open");
    // fall x interval, each failure taking up to twice the timeout (the
    // VIP's, then the server's own address's), plus a phase.
    let (down, took) = l.wait_health_state(&rs2, "down", Duration::from_secs(4));
    assert!(took < Duration::from_millis(2600), "down after {took:?}");
    let reason = down["reason"].as_str().unwrap();
    holds(
        reason,
        &format!(
            "no answer from the VIP {VIP}:80 at {RS2} within 200 ms while its own address answers"
        ),
    );
    holds(
        reason,
        "the VIP missing from lo, arp_ignore, a firewall on the VIP",
    );
    holds(reason, &format!("uvs audit --mode dr --vip {VIP}"));
    holds(reason, "3 of 3 checks failed");
    assert_eq!(l.health_row(&format!("{RS1}:80"))["state"], "up");
    // The text listing names it too.
    let text = l.health_text();
    holds(&text, "uvs audit --mode dr");

    l.exec("rs2", "ip", &["addr", "add", &vip, "dev", "lo"]);
    let (up, took) = l.wait_health_state(&rs2, "up", Duration::from_secs(3));
    assert!(took < Duration::from_millis(1000), "up after {took:?}");
    holds(up["reason"].as_str().unwrap(), "TCP check passed");
}
