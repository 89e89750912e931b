//! The HA transport over IPv6 (issue 28): a pair whose heartbeats, sync
//! stream and witness run over IPv6 only, serving an IPv4 and an IPv6
//! service. IPv4 datagrams of the HA port are dropped (and counted) on
//! the switch from the start, and the HA sockets are bound to the
//! directors' IPv6 addresses; the witness decides a split over IPv6, and
//! connections of both families survive `kill -9` of the active one.

use super::witness::{spawn_witness, two_holders_over};
use super::{Pair, pair_of, sticks_done, sticks_to};
use crate::support::{RS1, RS1_6, RS2, RS2_6, VIP, VIP6, tally2, wait_until};
use std::time::Duration;

/// A and B (2001:2::2 and ::3) with the witness on 2001:2::4, a TCP
/// service on VIP:80 and one on [VIP6]:80, rr over two real servers of
/// its family each; IPv4 on the HA port dropped on the switch.
fn pair6() -> Option<Pair> {
    let mut table = String::new();
    for (vip, rs) in [
        (VIP.to_string(), [RS1, RS2]),
        (format!("[{VIP6}]"), [RS1_6, RS2_6]),
    ] {
        table += &format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"{vip}:80\"\nscheduler = \"rr\"\n\
             [[service.real_server]]\naddress = \"{}\"\n\
             [[service.real_server]]\naddress = \"{}\"\n",
            rs[0], rs[1]
        );
    }
    let w: &[&str] = &["--witness", "2001:2::4"];
    let p = pair_of(
        &["--witness"],
        [w, w],
        &mut |l| {
            // Any IPv4 datagram to or from the HA port is dropped (and
            // counted) between the hosts: the pair must do without.
            let script = "nft add table bridge uvsv4 && \
                 nft add chain bridge uvsv4 f '{ type filter hook forward priority 0; }' && \
                 nft add rule bridge uvsv4 f ip protocol udp udp dport 5405 counter drop && \
                 nft add rule bridge uvsv4 f ip protocol udp udp sport 5405 counter drop";
            let o = l.sh("sw", script);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            spawn_witness(l, ["2001:2::4", "2001:2::2", "2001:2::3"]);
        },
        &table,
        ["2001:2::3", "2001:2::2"],
    )?;
    wait_until(
        Duration::from_secs(5),
        || p.ha(0)["witness"]["votes_for_us"] == true,
        || format!("{}\n{}\n{}", p.ha(0), p.l.log("witness.log"), p.logs()),
    );
    Some(p)
}

/// The IPv4 datagrams of the HA port the switch dropped.
fn v4_dropped(p: &Pair) -> String {
    let o = p.l.sh("sw", "nft list table bridge uvsv4");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_pair_runs_its_heartbeats_sync_and_witness_over_ipv6_only() {
    let Some(mut p) = pair6() else { return };
    // The HA sockets: each director's on its IPv6 address, the witness's
    // on its own.
    for (node, addr) in [
        ("dir", "[2001:2::2]:5405"),
        ("dir2", "[2001:2::3]:5405"),
        ("wit", "[2001:2::4]:5405"),
    ] {
        let o = p.l.sh(node, "ss -Huan 'sport = :5405'");
        let ss = String::from_utf8_lossy(&o.stdout);
        assert!(ss.contains(addr) && !ss.contains("198.18."), "{node}: {ss}");
    }
    // `uvs ha` names the peer and the witness by their IPv6 addresses
    // (the witness with its port, bracketed).
    let sock = p.socks[0].to_str().unwrap().to_string();
    let text =
        p.l.exec("dir", env!("CARGO_BIN_EXE_uvs"), &["ha", "--socket", &sock]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("peer 2001:2::3 "), "{text}");
    assert!(text.contains("witness [2001:2::4]:5405 live"), "{text}");
    // Connections of both families, synced to B.
    let t4 = format!("{VIP}:80");
    let t6 = format!("[{VIP6}]:80");
    sticks_to(&mut p, &t4, 5, 120);
    for i in 0..5 {
        p.l.stick_bg_to(&t6, 120, 100, 3000, &format!("stick{}.log", 5 + i));
    }
    p.wait_b_synced(10);
    // A split (IPv6 heartbeats lost both ways between the directors, the
    // witness reaching both): A keeps the vote and the VIPs, B claims and
    // is refused, never two holders.
    p.switch_drops(
        "uvssplit",
        &[
            "ip6 saddr 2001:2::2 ip6 daddr 2001:2::3 udp dport 5405 drop",
            "ip6 saddr 2001:2::3 ip6 daddr 2001:2::2 udp dport 5405 drop",
        ],
    );
    let (both, a, b) = two_holders_over(&p, Duration::from_secs(3));
    assert_eq!(both, 0, "two holders in {both} samples\n{}", p.logs());
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("active", "backup"),
        "{}",
        p.logs()
    );
    let hb = p.ha(1);
    assert_eq!(hb["peers"][0]["live"], false, "{hb}");
    let reason = hb["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("the witness's vote is with 2001:2::2"),
        "{hb}"
    );
    // Healed: B hears A again and has its whole table again.
    p.l.sh("sw", "nft delete table bridge uvssplit");
    wait_until(
        Duration::from_secs(10),
        || p.ha(1)["peers"][0]["live"] == true && p.ha(1)["peers"][0]["synced"] == true,
        || format!("{}\n{}", p.ha(1), p.logs()),
    );
    p.wait_b_synced(10);
    // A killed: B takes the VIPs once the witness frees A's vote, and
    // every connection of both families finishes through it.
    p.fail_over_quickly("IPv6 transport with a witness");
    sticks_done(&mut p, 10, 120);
    assert_eq!(p.counter(1, "no_conn_dropped"), 0, "{}", p.logs());
    for target in [&t4, &t6] {
        let t =
            p.l.client(&["tcp-names", "--target", target, "--count", "10"]);
        assert_eq!(tally2(&t, "rs1", "rs2"), (5, 5, Some(0)), "{target}: {t}");
    }
    // Nothing of it went over IPv4.
    let dropped = v4_dropped(&p);
    assert_eq!(dropped.matches("packets 0 bytes 0").count(), 2, "{dropped}");
}
