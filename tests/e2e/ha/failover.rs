//! Failover: the backup takes the VIPs when the active director dies,
//! with every connection from the sync stream, also after a lossy stream
//! and with several workers on each side.

use super::{pair, pair_with, sticks, sticks_done};
use crate::support::{VIP, wait_until};
use std::time::Duration;

#[test]
fn the_backup_takes_over_when_the_active_director_dies() {
    let Some(p) = pair() else { return };
    let l = &p.l;
    p.all_answered(20);
    // The backup answers no ARP and forwards nothing: its counters stay 0.
    assert_eq!(p.counter(1, "forwarded"), 0);
    p.fail_over_quickly("failover");
    p.all_answered(20);
    l.assert_log("b1.log", "HA: now active");
}

/// Issue 13, test 1: 20 long-lived connections and a 20 MB upload
/// through the active director, which is killed (-9) midway: the backup
/// has every connection from the sync stream, so all of them finish
/// through it, intact and without a reset.
#[test]
fn connections_and_a_transfer_survive_a_kill_of_the_active_director() {
    let Some(mut p) = pair() else { return };
    sticks(&mut p, 20, 50);
    let target = format!("{VIP}:80");
    p.l.client_bg(
        &[
            "upload",
            "--target",
            &target,
            "--bytes",
            "20000000",
            "--pace-ms",
            "15",
        ],
        "upload.log",
    );
    // The backup has the 21 connections from the stream, and the same
    // digest.
    p.wait_b_synced(21);
    assert!(p.counter(0, "sync_sent_records") >= 21);
    std::thread::sleep(Duration::from_millis(1500));
    p.fail_over_quickly("failover under load (detection: 10 x 100 ms)");
    sticks_done(&mut p, 20, 50);
    let up = p.l.wait_child_logs("upload.log", Duration::from_secs(60));
    assert_eq!(up["intact"], true, "{up}\n{}", p.logs());
    assert!(up["error"].is_null(), "{up}");
    // The backup forwarded them: nothing was dropped for want of an entry.
    assert!(p.counter(1, "forwarded") > 0);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
}

/// Issue 13, test 3: a share of the sync stream from A to B is lost on
/// the switch (30%), and B's requests to resend are lost too, so gaps
/// cannot be filled by a resend: B detects each gap, skips it, asks for
/// the whole table and checks the digest. Once the loss stops, B's table
/// matches A's, and after A is killed every connection continues.
#[test]
fn a_lossy_sync_stream_is_detected_and_repaired_before_a_failover() {
    let Some(mut p) = pair() else { return };
    // Heartbeats are 80 bytes of UDP; sync messages are longer. A
    // request to resend has kind 5 in its sixth byte.
    p.switch_drops(
        "uvssync",
        &[
            "ip saddr 198.18.0.2 ip daddr 198.18.0.3 udp dport 5405 \
             udp length gt 84 numgen random mod 10 lt 3 counter drop",
            "ip saddr 198.18.0.3 ip daddr 198.18.0.2 udp dport 5405 @th,104,8 5 counter drop",
        ],
    );
    sticks(&mut p, 20, 80);
    for _ in 0..6 {
        p.all_answered(20);
    }
    wait_until(
        Duration::from_secs(15),
        || {
            p.sync(1, "gaps") >= 1
                && p.sync(1, "gaps_skipped") >= 1
                && p.sync(1, "resyncs_received") >= 1
        },
        || format!("{}\n{}", p.ha(1), p.logs()),
    );
    let drops = p.l.sh("sw", "nft list table bridge uvssync");
    println!(
        "lossy sync: B saw {} gaps, skipped {}, asked {} resyncs, got {}; digests ok {} mismatched {}\n{}",
        p.sync(1, "gaps"),
        p.sync(1, "gaps_skipped"),
        p.sync(1, "resyncs_asked"),
        p.sync(1, "resyncs_received"),
        p.sync(1, "digests_ok"),
        p.sync(1, "digest_mismatches"),
        String::from_utf8_lossy(&drops.stdout)
    );
    p.l.sh("sw", "nft delete table bridge uvssync");
    // Repaired: the same connections on both, the digest agrees.
    wait_until(
        Duration::from_secs(10),
        || {
            let h = p.ha(1);
            h["peers"][0]["synced"] == true
                && h["sync"]["digest"].as_str().unwrap_or("").starts_with("ok")
                && p.counter(0, "conns") == p.counter(1, "conns")
        },
        || format!("{}\n{}", p.ha(1), p.logs()),
    );
    p.fail_over();
    sticks_done(&mut p, 20, 80);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
}

/// Directors with several workers (A two, B three): each worker of A
/// queues its own changes and its share of the digest, the stream carries
/// their sum, and B gives each record to the worker that will see the
/// connection's frames. A restarted B gets the whole table, chunk by
/// chunk from each of A's workers, and its digest agrees; after A is
/// killed every connection continues through B.
#[test]
fn directors_with_several_workers_sync_verify_and_fail_over() {
    let Some(mut p) = pair_with([&["--workers", "2"], &["--workers", "3"]]) else {
        return;
    };
    sticks(&mut p, 20, 60);
    p.wait_b_synced(20);
    let (w0, w1) = (
        p.counter(0, "worker0_rx_frames"),
        p.counter(0, "worker1_rx_frames"),
    );
    assert!(w0 > 0 && w1 > 0, "A's workers: {w0} {w1}");
    // B again, from nothing: the full resync covers both of A's workers.
    p.kill(1);
    std::thread::sleep(Duration::from_millis(300));
    let log = p.start(1);
    wait_until(
        Duration::from_secs(15),
        || p.l.log(&log).contains("has the whole table of 198.18.0.2") && p.b_synced(20),
        || format!("{}\n{}", p.ha(1), p.logs()),
    );
    // No mismatch while B joins: B listens only once its file's services
    // are in (a B that asked for the table before that dropped the
    // connections of services it lacked, and counted a mismatch at the
    // next digest); from B's whole table on, digests keep agreeing while
    // the connections change.
    p.digests_agree_twice_more();
    assert_eq!(p.counter(0, "conns"), p.counter(1, "conns"));
    p.fail_over();
    sticks_done(&mut p, 20, 60);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
}
