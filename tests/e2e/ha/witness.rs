//! A third party's vote (`uvs witness`): one holder when the directors
//! cannot hear each other, and a pair as without one when the witness is
//! down.

use super::{Pair, pair_in, sticks, sticks_done};
use crate::support::wait_until;
use crate::support::{Lab, holds};
use std::time::{Duration, Instant};

/// Directors A and B with a witness (`uvs witness` on the lab's third
/// host, 198.18.0.4); `a_extra` adds flags to A.
fn pair_with_witness(a_extra: &[&str]) -> Option<Pair> {
    let w: &[&str] = &["--witness", "198.18.0.4"];
    let a: Vec<&str> = w.iter().chain(a_extra).copied().collect();
    let p = pair_in(&["--witness"], [&a, w], &mut |l| {
        spawn_witness(l, ["198.18.0.4", "198.18.0.2", "198.18.0.3"])
    })?;
    wait_until(
        Duration::from_secs(5),
        || p.ha(0)["witness"]["votes_for_us"] == true,
        || format!("{}\n{}\n{}", p.ha(0), p.l.log("witness.log"), p.logs()),
    );
    Some(p)
}

/// `uvs witness` on the lab's third host, listening on `listen` for the
/// directors `a` and `b` (`witness.log`, its pid in `witness.pid`).
pub(super) fn spawn_witness(l: &mut Lab, [listen, a, b]: [&str; 3]) {
    let key = l.dir.join("ha.key");
    let args = [
        "witness",
        "--listen",
        listen,
        "--director",
        a,
        "--director",
        b,
        "--ha-key-file",
        key.to_str().unwrap(),
    ];
    let pid = l.spawn("wit", env!("CARGO_BIN_EXE_uvs"), &args, "witness.log");
    std::fs::write(l.dir.join("witness.pid"), pid.to_string()).unwrap();
}

/// Samples both roles every 20 ms for `d`: how many samples had two
/// holders, and the roles at the end.
pub(super) fn two_holders_over(p: &Pair, d: Duration) -> (usize, String, String) {
    let t0 = Instant::now();
    let mut both = 0;
    let (mut a, mut b) = (String::new(), String::new());
    while t0.elapsed() < d {
        (a, b) = (p.role(0), p.role(1));
        both += usize::from(a == "active" && b == "active");
        std::thread::sleep(Duration::from_millis(20));
    }
    (both, a, b)
}

/// Issue 25, test 4: with a witness, heartbeats lost both ways between
/// the directors (the witness still reaching both) never leave two
/// holders: A keeps the witness's vote and the VIPs, B claims and is
/// refused, and the connections through A go on. Then A is cut from
/// both the peer and the witness: it lets go, and B takes over once the
/// witness frees the vote, again never two holders.
#[test]
fn a_witness_leaves_one_holder_when_the_directors_cannot_hear_each_other() {
    let Some(mut p) = pair_with_witness(&[]) else {
        return;
    };
    sticks(&mut p, 10, 80);
    p.switch_drops(
        "uvssplit",
        &[
            "ip saddr 198.18.0.2 ip daddr 198.18.0.3 udp dport 5405 drop",
            "ip saddr 198.18.0.3 ip daddr 198.18.0.2 udp dport 5405 drop",
        ],
    );
    let (both, a, b) = two_holders_over(&p, Duration::from_secs(4));
    assert_eq!(both, 0, "two holders in {both} samples\n{}", p.logs());
    assert_eq!((a.as_str(), b.as_str()), ("active", "backup"));
    let hb = p.ha(1);
    assert_eq!(hb["peers"][0]["live"], false, "{hb}");
    assert!(
        hb["reason"]
            .as_str()
            .unwrap_or("")
            .contains("the witness's vote is with 198.18.0.2"),
        "{hb}"
    );
    sticks_done(&mut p, 10, 80);
    p.l.sh("sw", "nft delete table bridge uvssplit");
    // A cut from everything (its HA port on the switch): it lets go; B
    // gets the vote and the VIPs.
    p.switch_drops(
        "uvscut",
        &[
            "ip saddr 198.18.0.2 udp dport 5405 drop",
            "ip daddr 198.18.0.2 udp sport 5405 drop",
        ],
    );
    let t0 = Instant::now();
    let (both, a, b) = two_holders_over(&p, Duration::from_secs(4));
    assert_eq!(both, 0, "two holders in {both} samples\n{}", p.logs());
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("backup", "active"),
        "{}",
        p.logs()
    );
    println!(
        "A cut from both: B holds the VIPs, checked {} ms after the cut; witness: {}",
        t0.elapsed().as_millis(),
        p.l.log("witness.log").trim().replace('\n', " | ")
    );
    p.all_answered(10);
}

/// Issue 25, test 4, the witness down: the two directors go on as
/// without one. They hold the VIPs between them (two votes of three),
/// and once both have told each other they lost the witness, a kill of
/// the active one is a failover as without a witness.
#[test]
fn with_the_witness_down_the_pair_behaves_as_without_one() {
    let Some(mut p) = pair_with_witness(&[]) else {
        return;
    };
    let pid = std::fs::read_to_string(p.l.dir.join("witness.pid")).unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    sticks(&mut p, 10, 50);
    let (both, a, b) = two_holders_over(&p, Duration::from_millis(2500));
    assert_eq!(both, 0);
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("active", "backup"),
        "{}",
        p.logs()
    );
    assert_eq!(p.ha(1)["peers"][0]["hears_witness"], false);
    assert_eq!(p.ha(0)["witness"]["live"], false);
    p.fail_over_quickly("witness down");
    sticks_done(&mut p, 10, 50);
    let reason = p.ha(1)["reason"].as_str().unwrap_or("").to_string();
    holds(&reason, "as without one");
    assert!(
        p.l.log("b1.log")
            .contains("the witness 198.18.0.4:5405 is out of reach"),
        "{}",
        p.logs()
    );
}
