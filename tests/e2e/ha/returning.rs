//! The active director returns: preemption after its peer's table and
//! the delay, none without preemption, a restart at once or after the
//! failover keeping every connection; track conditions and notify
//! commands moving the VIPs.

use super::{Pair, pair, pair_after, pair_with, sticks, sticks_done};
use crate::support::holds;
use crate::support::{Lab, wait_until};
use std::time::{Duration, Instant};

/// Issue 13, test 5: the preferred director (A) comes back while B holds
/// the VIPs. With preemption and a 2 s delay it takes them back only
/// after it has B's table and the delay has passed, and the connections
/// made through B continue through A. With --nopreempt it leaves them.
#[test]
fn the_preferred_director_takes_over_again_only_with_the_table_and_after_the_delay() {
    let Some(mut p) = pair_with([&["--preempt-delay", "2"], &[]]) else {
        return;
    };
    p.fail_over();
    sticks(&mut p, 10, 70);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let log = p.start(0);
    let mut synced_at = None;
    wait_until(
        Duration::from_secs(10),
        || {
            let l = p.l.log(&log);
            if synced_at.is_none() && l.contains("has the whole table of 198.18.0.3") {
                synced_at = Some(t0.elapsed());
            }
            p.role(0) == "active"
        },
        || p.logs(),
    );
    let took = t0.elapsed();
    let synced =
        synced_at.unwrap_or_else(|| panic!("A took over without B's table:\n{}", p.logs()));
    println!(
        "preemption: A back, had B's table after {} ms, took the VIPs after {} ms",
        synced.as_millis(),
        took.as_millis()
    );
    assert!(took >= synced + Duration::from_secs(2), "{}", p.logs());
    wait_until(
        Duration::from_secs(3),
        || p.role(1) == "backup",
        || p.logs(),
    );
    sticks_done(&mut p, 10, 70);
    assert_eq!(p.counter(0, "no_conn_dropped"), 0, "{}", p.logs());
}

#[test]
fn without_preemption_the_returning_director_stays_backup() {
    let Some(mut p) = pair_with([&["--nopreempt"], &["--nopreempt"]]) else {
        return;
    };
    p.fail_over();
    p.start(0);
    wait_until(
        Duration::from_secs(5),
        || p.ha(0)["peers"][0]["synced"] == true,
        || p.logs(),
    );
    for _ in 0..15 {
        assert_eq!(p.role(0), "backup", "{}", p.logs());
        assert_eq!(p.role(1), "active");
        std::thread::sleep(Duration::from_millis(200));
    }
    let reason = p.ha(1)["reason"].as_str().unwrap_or("").to_string();
    holds(&reason, "preemption is off");
}

/// Kills the active director A (-9) while 10 long connections run
/// through it, starts it again after `delay_ms`, and checks that it took
/// B's table before the VIPs, that B never replaced its copy with an
/// empty table, and that every connection finished.
fn restart_keeps_every_connection(p: &mut Pair, delay_ms: u64, b_took_over: bool) {
    // Each answer may wait 10 s: the stall until the restarted director
    // (or the peer) holds the VIPs is a second or two, longer on a loaded
    // machine, and TCP's retransmissions back off past 3 s; what counts
    // is that no connection breaks.
    for i in 0..10 {
        p.l.stick_bg_waiting(60, 100, 10_000, &format!("stick{i}.log"));
    }
    p.wait_b_synced(10);
    std::thread::sleep(Duration::from_millis(500));
    let b_before = p.l.log("b1.log").len();
    p.kill(0);
    std::thread::sleep(Duration::from_millis(delay_ms));
    if b_took_over {
        // The case this is about: B holds the VIPs when A comes back.
        wait_until(
            Duration::from_secs(5),
            || p.role(1) == "active",
            || p.logs(),
        );
    }
    let log = p.start(0);
    wait_until(
        Duration::from_secs(10),
        || p.role(0) == "active" && p.role(1) == "backup",
        || p.logs(),
    );
    let a = p.l.log(&log);
    assert!(
        a.contains("has the whole table of 198.18.0.3"),
        "A took the VIPs without B's table:\n{}",
        p.logs()
    );
    println!(
        "restart after {delay_ms} ms: {}",
        a.lines()
            .filter(|l| l.contains("HA:"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    sticks_done(p, 10, 60);
    // B never replaced its copy with an empty table.
    let b = p.l.log("b1.log");
    let since = &b[b_before..];
    assert!(
        !since
            .lines()
            .any(|l| l.contains("has the whole table") && l.contains(" 0 connections)")),
        "{since}"
    );
    assert_eq!(p.counter(0, "no_conn_dropped"), 0, "{}", p.logs());
}

/// Issue 25, test 2: the active director killed (-9) and started again
/// 0.3 s later, before its peer counted it gone: it takes B's copy of the
/// connection table before it takes the VIPs (without that it took them
/// with an empty table, and B dropped its copy when it asked for A's).
/// A dead interval of 2 s (20 heartbeats) here: a debug build takes about
/// 0.75 s to start listening (the XDP program, the VIP's address probes),
/// so with the default 1 s the restart would come after B took over.
#[test]
fn an_active_director_restarted_at_once_keeps_every_connection() {
    let dead: &[&str] = &["--dead-after", "20"];
    let Some(mut p) = pair_with([dead, dead]) else {
        return;
    };
    restart_keeps_every_connection(&mut p, 300, false);
}

/// Issue 25, test 2, second half: restarted 2 s after the kill, when B
/// has taken over: A takes the VIPs back by preemption, with B's table.
#[test]
fn an_active_director_restarted_after_the_failover_keeps_every_connection() {
    let Some(mut p) = pair() else { return };
    restart_keeps_every_connection(&mut p, 2000, true);
}

/// Track conditions and notify commands: A tracks a script (failing puts
/// it in fault) and an interface with a weight of -150 (down: priority
/// 50, below B's 100). Each change moves the VIPs, and A's notify
/// command records its states with their priorities.
#[test]
fn track_conditions_move_the_vips_and_notify_commands_run() {
    let flag = std::env::temp_dir().join(format!("uvs-track-{}", std::process::id()));
    let notes = std::env::temp_dir().join(format!("uvs-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let _ = std::fs::remove_file(&notes);
    let script = format!("test ! -e {}", flag.display());
    let notify = format!("echo \"$1 $2 $UVS_HA_REASON\" >> {}", notes.display());
    let dummy = |l: &Lab| {
        let o = l.sh("dir", "ip link add trk0 type veth peer name trk1 && ip link set trk1 up && ip link set trk0 up");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let a: &[&str] = &[
        "--track-script",
        &script,
        "--track-interface",
        "trk0:-150",
        "--notify",
        &notify,
    ];
    let Some(p) = pair_after([a, &[]], &dummy) else {
        return;
    };
    assert_eq!(p.ha(0)["effective_priority"], 200);
    // The script fails: fault, B takes over.
    std::fs::write(&flag, b"").unwrap();
    wait_until(
        Duration::from_secs(5),
        || p.role(1) == "active" && p.role(0) == "backup",
        || format!("{}\n{}", p.ha(0), p.logs()),
    );
    assert!(
        p.ha(0)["fault"]
            .as_str()
            .unwrap_or("")
            .contains("track script")
    );
    std::fs::remove_file(&flag).unwrap();
    wait_until(
        Duration::from_secs(5),
        || p.role(0) == "active",
        || format!("{}\n{}", p.ha(0), p.logs()),
    );
    // The interface goes down: priority 50 < 100, B preempts.
    p.l.sh("dir", "ip link set trk0 down");
    wait_until(
        Duration::from_secs(6),
        || p.role(1) == "active" && p.ha(0)["effective_priority"] == 50,
        || format!("{}\n{}", p.ha(0), p.logs()),
    );
    let n = std::fs::read_to_string(&notes).unwrap_or_default();
    let _ = std::fs::remove_file(&notes);
    let states: Vec<&str> = n.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(states.windows(2).any(|w| w == ["ACTIVE", "FAULT"]), "{n}");
    assert!(
        n.lines()
            .any(|l| l.starts_with("FAULT 0 fault: track script")),
        "{n}"
    );
    assert!(n.lines().any(|l| l.starts_with("BACKUP 50 ")), "{n}");
    assert!(
        p.logs()
            .contains("interface trk0 down (failing); priority 50"),
        "{}",
        p.logs()
    );
}
