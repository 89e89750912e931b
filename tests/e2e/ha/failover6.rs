//! Failover of an IPv6 service (issue 28, test 4): `[VIP6]:80` by direct
//! routing to two IPv6 real servers, on every backend. The backup has every IPv6
//! connection from the sync stream; after a `kill -9` of the active
//! director it takes the VIP, its unsolicited neighbour advertisement
//! reaches the client (captured there, and the client's neighbour entry
//! for VIP6 turns to the new holder's MAC at once, where its own
//! reachability probing would take seconds), and the same connections
//! carry their data through it. Heartbeats and sync run over IPv4.

use super::{Pair, pair_serving, sticks_done, sticks_to};
use crate::support::{RS1_6, RS2_6, VIP6, tally2, wait_until};
use std::time::{Duration, Instant};

/// The pair with TCP `[VIP6]:80`, rr over the IPv6 real servers.
fn pair6() -> Option<Pair> {
    let head =
        format!("[[service]]\nprotocol = \"tcp\"\naddress = \"[{VIP6}]:80\"\nscheduler = \"rr\"\n");
    pair_serving(&[], [&[], &[]], &mut |_| {}, &head, [RS1_6, RS2_6])
}

#[test]
fn ipv6_connections_survive_a_kill_of_the_active_director() {
    let Some(mut p) = pair6() else { return };
    let target = format!("[{VIP6}]:80");
    sticks_to(&mut p, &target, 10, 50);
    // The backup has the 10 IPv6 connections from the stream, and the
    // same digest (both tables' sum).
    p.wait_b_synced(10);
    let (a_mac, b_mac) = (p.l.mac("dir"), p.l.mac("dir2"));
    assert_eq!(p.l.client_neighbour(VIP6), Some(a_mac.clone()));
    // Advertisements for the VIP, as the client receives them.
    let filter = "icmp6 and ip6[40] == 136";
    let args = ["-i", "eth0", "-n", "-e", "-l", filter];
    p.l.spawn("cl", "tcpdump", &args, "na.log");
    std::thread::sleep(Duration::from_millis(1000));
    p.fail_over_quickly("IPv6 failover");
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(2),
        || p.l.client_neighbour(VIP6).as_deref() == Some(b_mac.as_str()),
        || format!("client: {:?}\n{}", p.l.client_neighbour(VIP6), p.logs()),
    );
    println!(
        "the client's entry for {VIP6}: {a_mac} then {b_mac}, {} ms after B became active",
        t0.elapsed().as_millis()
    );
    sticks_done(&mut p, 10, 50);
    let na = p.l.log("na.log");
    let from_b = na.lines().find(|x| {
        x.contains(&b_mac) && x.contains(&format!("neighbor advertisement, tgt is {VIP6}"))
    });
    assert!(from_b.is_some(), "no advertisement from {b_mac}:\n{na}");
    // B forwarded them: nothing was dropped for want of an entry.
    assert!(p.counter(1, "forwarded") > 0);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
    // New connections through B, split by its rr.
    let t =
        p.l.client(&["tcp-names", "--target", &target, "--count", "10"]);
    assert_eq!(tally2(&t, "rs1", "rs2"), (5, 5, Some(0)), "{t}");
    p.l.assert_log("b1.log", "HA: now active");
}
